"""ServiceHarness: runs a user's service classes on a private broker, for tests that wait without sleeping.

Every message the harness sends asks for a reply (events too): a dispatcher replies once the message's
handler has finished, so awaiting that reply is awaiting the handler. Nothing polls and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from uuid import UUID, uuid4

from minos.common import Config

from ..actors import StartStop
from ..brokers import BrokerClient, BrokerPort
from ..protocol import BrokerMessage, BrokerMessageV1, BrokerMessageV1Payload, BrokerMessageV1Strategy

__all__ = ["ServiceHarness"]

logger = logging.getLogger(__name__)

Transport = Literal["memory", "zmq"]
TRANSPORTS: tuple[Transport, ...] = ("memory", "zmq")
DEFAULT_TIMEOUT = 10.0


class ServiceHarness(StartStop):
    """Runs ``services`` (classes with ``@enroute.broker`` handlers) on a broker of their own, for tests.

    ``async with ServiceHarness([OrderService]) as harness:`` starts the handlers on a private broker:
    the in-memory twin (``transport="memory"``, the default) or an embedded ZeroMQ broker on a private
    ``inproc://`` endpoint (``transport="zmq"``), so the very same test runs on either. Leaving the block
    stops everything the harness started, threads included.

    ``await harness.send(topic, content)`` returns once the handler of the message has finished, with
    its reply (for an event handler that returns nothing: status 200, content None). A handler that
    raises gives a 500 reply whose content names the handler and the error. By default a failing
    handler is not retried (``retries.max_attempts`` is 1), so that reply comes at once; pass
    ``broker={"retries": {...}}`` to test retries.

    Args:
        services: The service classes (or import paths) whose broker handlers run, as in ``services``
            of a Config.
        transport: ``memory`` for the in-process twin, ``zmq`` for an embedded ZeroMQ broker.
        name: The service's name (its group); a unique suffix is added so harnesses never share a broker.
        broker: More ``interfaces.broker`` keys (``concurrency``, ``retries``, ...); they win over the
            harness's own.
        config: More top-level Config keys (``middleware``, ``routers``, any key a service reads).
        timeout: Seconds ``send`` and ``request`` wait for a reply by default before raising TimeoutError.
    """

    def __init__(
        self,
        services: Iterable[type | str],
        *,
        transport: Transport = "memory",
        name: str = "service",
        broker: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS!r}, got {transport!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.transport = transport
        self.timeout = timeout
        unique = f"{name}-{uuid4().hex[:8]}"
        where: dict[str, Any]
        if transport == "memory":
            where = {"transport": "memory", "endpoint": f"memory-{unique}"}
        else:
            where = {"transport": "zmq", "endpoint": f"inproc://{unique}", "embedded": True}
        settings: dict[str, Any] = {
            **where,
            "heartbeat_interval": 0.2,
            "close_timeout": 2.0,
            "retries": {"max_attempts": 1},
            **(broker or {}),
        }
        self.config = Config(
            {
                **(config or {}),
                "name": unique,
                "interfaces": {**dict((config or {}).get("interfaces", {})), "broker": settings},
                "services": list(services),
            }
        )
        """The Config the harness built: pass it to ``BrokerClient.from_config`` and the like."""
        self.port = BrokerPort.from_config(self.config)
        """The running broker side: the embedded broker if any, and the dispatchers."""
        self.topics: list[str] = self.port.dispatcher.topics if self.port.dispatcher is not None else []
        """The topics the services handle, sorted."""
        self._client: BrokerClient | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[UUID, asyncio.Future[BrokerMessage]] = {}

    def __repr__(self) -> str:
        return f"<ServiceHarness {self.config.name!r} transport={self.transport!r} topics={self.topics!r}>"

    async def start(self) -> None:
        """Start the broker and the handlers, then the client the harness sends with (idempotent)."""
        if self._client is not None:
            return
        await self.port.start()
        client = BrokerClient.from_config(self.config)
        try:
            await client.start()
        except BaseException:
            await client.stop()
            await self.port.stop()
            raise
        self._client = client
        self._reader = asyncio.get_running_loop().create_task(self._read(client), name=f"{self!r} replies")

    async def stop(self) -> None:
        """Stop the client, then the handlers (running ones finish within the close timeout) and the broker."""
        client, self._client = self._client, None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()
        try:
            if client is not None:
                await client.stop()
        finally:
            await self.port.stop()

    async def _read(self, client: BrokerClient) -> None:
        """Hand each reply to the send that waits for it (one reader, so concurrent sends never mix up)."""
        while True:
            reply = await client.receive()
            future = self._waiting.pop(reply.identifier, None)
            if future is None:
                logger.info("%r dropped a reply nobody waits for: %s", self, reply.identifier)
            elif not future.done():
                future.set_result(reply)

    async def send(
        self,
        topic: str,
        content: Any = None,
        *,
        wait: bool = True,
        headers: dict[str, str] | None = None,
        strategy: BrokerMessageV1Strategy | None = None,
        timeout: float | None = None,
    ) -> BrokerMessage | None:
        """Send ``content`` on ``topic``; with ``wait``, return the reply once the handler has finished.

        Args:
            topic: A topic one of the services handles (checked when ``wait`` is true).
            content: The message's content.
            wait: Whether to wait for the handler; if false, return None once the broker accepted it.
            headers: The message's headers.
            strategy: UNICAST (the default) or MULTICAST.
            timeout: Seconds to wait for the reply (the harness's ``timeout`` by default).

        Raises:
            LookupError: ``wait`` is true and no service handles ``topic`` (nothing would ever answer).
            TimeoutError: No reply came within the timeout.
            RuntimeError: The harness is not started.
        """
        client = self._running_client()
        payload = BrokerMessageV1Payload(content, headers)
        if not wait:
            await client.publisher.send(BrokerMessageV1(topic, payload, strategy=strategy))
            return None
        if topic not in self.topics:
            raise LookupError(
                f"no service of {self!r} handles topic {topic!r}; known topics: {self.topics!r}"
            )
        message = BrokerMessageV1(topic, payload, strategy=strategy, reply_topic=client.topic)
        future: asyncio.Future[BrokerMessage] = asyncio.get_running_loop().create_future()
        self._waiting[message.identifier] = future
        limit = self.timeout if timeout is None else timeout
        try:
            await client.send(message)
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            raise TimeoutError(f"no reply to {topic!r} ({message.identifier}) within {limit} s") from None
        finally:
            self._waiting.pop(message.identifier, None)

    async def request(
        self,
        topic: str,
        content: Any = None,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> BrokerMessage:
        """Send ``content`` on ``topic`` and return the reply, once the handler has finished.

        Raises:
            LookupError: No service handles ``topic``.
            TimeoutError: No reply came within the timeout.
            RuntimeError: The harness is not started.
        """
        reply = await self.send(topic, content, headers=headers, timeout=timeout)
        if reply is None:  # cannot happen: send with wait=True returns the reply or raises
            raise RuntimeError(f"no reply to {topic!r}")
        return reply

    def _running_client(self) -> BrokerClient:
        if self._client is None:
            raise RuntimeError(f"{self!r} is not started: use it as 'async with ServiceHarness(...)'")
        return self._client
