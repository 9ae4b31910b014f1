"""Discovery clients: the interface, the Minos discovery service over HTTP, and the in-memory twin."""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import aiohttp

from minos.common import ConfigSource, as_config

from ..actors.clock import Sleep
from ..exceptions import MinosDiscoveryConnectorException

__all__ = [
    "Backoff",
    "DiscoveryClient",
    "DiscoveryUnavailableError",
    "InMemoryDiscoveryClient",
    "MinosDiscoveryClient",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 5567


class DiscoveryUnavailableError(MinosDiscoveryConnectorException, ConnectionError):
    """The discovery service could not be reached, or failed on its side (5xx); trying again may work."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt ``n`` waits about ``first * factor**(n - 1)``, capped.

    Attributes:
        first: Seconds before the second attempt (before jitter).
        factor: How much each wait grows.
        maximum: The longest wait, in seconds.
        jitter: The fraction of each wait drawn at random, so that many clients do not retry in step.
    """

    first: float = 0.1
    factor: float = 2.0
    maximum: float = 5.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.first < 0 or self.factor < 1 or self.maximum < 0 or not 0 <= self.jitter <= 1:
            raise ValueError(
                "a backoff needs first >= 0, factor >= 1, maximum >= 0 and 0 <= jitter <= 1, got "
                f"{self.first!r}, {self.factor!r}, {self.maximum!r} and {self.jitter!r}"
            )

    def delay(self, attempt: int) -> float:
        """Returns the seconds to wait after failed attempt number ``attempt`` (1 for the first)."""
        base = min(self.maximum, self.first * self.factor ** max(attempt - 1, 0))
        return base * (1 - self.jitter * random.random())


class DiscoveryClient(ABC):
    """Registers a service's REST endpoints with a discovery service, and removes them.

    A subclass whose ``from_config`` reads more keys of ``discovery`` lists them in :attr:`config_keys`:
    the connector refuses any key of the section that neither it nor the client reads.

    Args:
        host: The discovery service's host.
        port: The discovery service's port.
    """

    config_keys: ClassVar[tuple[str, ...]] = ("host", "port")
    """The keys of ``discovery`` :meth:`from_config` reads."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.host = host
        self.port = port

    @classmethod
    def from_config(cls, config: ConfigSource) -> Self:
        """The client of the discovery service at ``discovery.host`` and ``discovery.port``.

        Raises:
            ConfigError: One of them has the wrong type.
        """
        config = as_config(config)
        return cls(
            config.get_str("discovery.host", DEFAULT_HOST), config.get_int("discovery.port", DEFAULT_PORT)
        )

    @property
    def route(self) -> str:
        """The base URL of the discovery service, e.g. ``http://localhost:5567``."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}"

    @abstractmethod
    async def subscribe(
        self, host: str, port: int, name: str, endpoints: Sequence[Mapping[str, Any]]
    ) -> None:
        """Registers service ``name``, reachable at ``host``:``port``, with its REST endpoints.

        Args:
            host: The address other services reach this one at.
            port: Its HTTP port.
            name: The service's name.
            endpoints: ``{"url": ..., "method": ..., **decorator kwargs}`` for each REST route.

        Raises:
            DiscoveryUnavailableError: The discovery service could not be reached; trying again may work.
            MinosDiscoveryConnectorException: The discovery service refused the registration.
        """

    @abstractmethod
    async def unsubscribe(self, name: str) -> None:
        """Removes service ``name``.

        Raises:
            DiscoveryUnavailableError: The discovery service could not be reached; trying again may work.
            MinosDiscoveryConnectorException: The discovery service refused.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.host!r}, {self.port!r})"


class MinosDiscoveryClient(DiscoveryClient):
    """The client of the Minos discovery service's HTTP API.

    ``subscribe`` sends ``POST {route}/microservices/{name}`` with ``{"address", "port", "endpoints":
    [[method, url], ...]}``; ``unsubscribe`` sends ``DELETE {route}/microservices/{name}`` (a 404 there
    means already gone). A request that cannot reach the service, times out or gets a 5xx is tried again,
    ``attempts`` times in all with ``backoff`` between; a 4xx is not.

    Args:
        host: The discovery service's host.
        port: The discovery service's port.
        attempts: How many times a request is tried at most.
        backoff: The waits between attempts.
        request_timeout: Seconds one request may take.
        sleep: What the waits sleep with (tests may pass a fake).
    """

    config_keys: ClassVar[tuple[str, ...]] = ("host", "port", "attempts", "request_timeout")

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        attempts: int = 3,
        backoff: Backoff | None = None,
        request_timeout: float = 5.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(host, port)
        if attempts < 1 or request_timeout <= 0:
            raise ValueError(
                f"attempts must be at least 1 and request_timeout positive, got {attempts!r} and "
                f"{request_timeout!r}"
            )
        self.attempts = attempts
        self.backoff = Backoff() if backoff is None else backoff
        self.request_timeout = request_timeout
        self._sleep = sleep

    @classmethod
    def from_config(cls, config: ConfigSource) -> Self:
        """The client ``discovery`` describes: ``host``, ``port``, ``attempts`` and ``request_timeout``.

        Raises:
            ConfigError: A key has the wrong type.
        """
        config = as_config(config)
        return cls(
            config.get_str("discovery.host", DEFAULT_HOST),
            config.get_int("discovery.port", DEFAULT_PORT),
            attempts=config.get_int("discovery.attempts", 3),
            request_timeout=config.get_float("discovery.request_timeout", 5.0),
        )

    async def subscribe(
        self, host: str, port: int, name: str, endpoints: Sequence[Mapping[str, Any]]
    ) -> None:
        body = {
            "address": host,
            "port": port,
            "endpoints": [[endpoint["method"], endpoint["url"]] for endpoint in endpoints],
        }
        await self._request("POST", name, body)

    async def unsubscribe(self, name: str) -> None:
        await self._request("DELETE", name, None)

    async def _request(self, method: str, name: str, body: dict[str, Any] | None) -> None:
        url = f"{self.route}/microservices/{name}"
        for attempt in range(1, self.attempts + 1):
            try:
                status, text = await self._send(method, url, body)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error: DiscoveryUnavailableError = DiscoveryUnavailableError(
                    f"{method} {url} could not reach the discovery service: {exc!r}; check that it runs there"
                )
                error.__cause__ = exc
            else:
                if status < 300 or (method == "DELETE" and status == 404):
                    return
                if status < 500:
                    raise MinosDiscoveryConnectorException(
                        f"{method} {url} was refused by the discovery service with status {status}: {text!r}"
                    )
                error = DiscoveryUnavailableError(
                    f"{method} {url} failed on the discovery service's side with status {status}: {text!r}"
                )
            if attempt == self.attempts:
                raise error
            delay = self.backoff.delay(attempt)
            logger.debug(
                "%s (attempt %d of %d); trying again in %.3f s", error, attempt, self.attempts, delay
            )
            await self._sleep(delay)

    async def _send(self, method: str, url: str, body: dict[str, Any] | None) -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, json=body) as response,
        ):
            return response.status, (await response.text())[:200]


class InMemoryDiscoveryClient(DiscoveryClient):
    """A discovery client that keeps registrations in memory, for tests; it records every call.

    Set :attr:`available` to False to make calls fail as if the discovery service were down.

    Args:
        host: The discovery service's host (unused).
        port: The discovery service's port (unused).
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        super().__init__(host, port)
        self.available = True
        self.calls: list[tuple[str, str]] = []
        self.services: dict[str, dict[str, Any]] = {}

    @property
    def is_subscribed(self) -> bool:
        """Whether some service is registered (minos 0.7's flag)."""
        return bool(self.services)

    async def subscribe(
        self, host: str = "", port: int = 0, name: str = "", endpoints: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        """Registers ``name``; every argument may be left out, as minos 0.7's twin took any (``subscribe()``
        registers the service ``""``)."""
        self.calls.append(("subscribe", name))
        self._check_available()
        self.services[name] = {"host": host, "port": port, "endpoints": [dict(item) for item in endpoints]}

    async def unsubscribe(self, name: str = "") -> None:
        """Removes ``name`` (``""`` when left out, as ``subscribe()`` registered it)."""
        self.calls.append(("unsubscribe", name))
        self._check_available()
        self.services.pop(name, None)

    def _check_available(self) -> None:
        if not self.available:
            raise DiscoveryUnavailableError(f"{self!r} is set unavailable")
