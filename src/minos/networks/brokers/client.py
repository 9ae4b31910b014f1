"""BrokerClient sends requests and receives their replies on a private topic; BrokerClientPool lends clients out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol, Self
from uuid import UUID, uuid4

from minos.common import Config, ConfigSource, as_config

from ..actors import StartStop
from ..exceptions import MinosHandlerNotFoundEnoughEntriesException
from ..protocol import REQUEST_REPLY_TOPIC_CONTEXT_VAR, BrokerMessage, BrokerMessageV1
from .config import BrokerSettings, broker_settings
from .duplicates import DuplicateFilter
from .publisher import BrokerPublisher
from .subscriber import BrokerSubscriber

__all__ = ["BrokerClient", "BrokerClientPool"]

logger = logging.getLogger(__name__)


class _Publisher(Protocol):
    async def start(self) -> None: ...
    async def stop(self, timeout: float | None = None) -> None: ...
    async def send(self, message: BrokerMessage) -> None: ...


class _Subscriber(Protocol):
    async def start(self) -> None: ...
    async def stop(self, timeout: float | None = None) -> None: ...
    async def receive(self) -> BrokerMessage: ...


class BrokerClient(StartStop):
    """Sends messages that ask for replies on ``topic`` (private to this client) and receives the replies.

    Replies are matched by identifier: a reply to a request this client gave up on (``receive_many``
    timed out while it was pending) is dropped, so a late reply never answers a later request.
    Messages on the topic that answer no request of this client are returned as they come.

    Args:
        topic: Where replies come back; private to this client.
        publisher: Sends the requests.
        subscriber: Receives on ``topic``.
    """

    def __init__(self, topic: str, publisher: _Publisher, subscriber: _Subscriber) -> None:
        self.topic = topic
        self.publisher = publisher
        self.subscriber = subscriber
        self._pending: set[UUID] = set()
        self._abandoned = DuplicateFilter(max_entries=100_000, ttl=3600.0)
        self._started = False

    @classmethod
    def from_config(
        cls, config: ConfigSource, *, topic: str | None = None, settings: BrokerSettings | None = None
    ) -> Self:
        """A client on the broker that ``interfaces.broker`` names, replying to ``topic`` (random if None).

        ``settings`` are ``config``'s broker settings when the caller has read them already; they are read
        from ``config`` otherwise, once for both the publisher and the subscriber.
        """
        config = as_config(config)
        settings = broker_settings(config) if settings is None else settings
        topic = topic or f"{config.name}.reply.{uuid4().hex}"
        subscriber = BrokerSubscriber.from_config(
            config, [topic], group=topic, transient=True, settings=settings
        )
        # Never durable: a request whose reply is awaited times out with an error instead of being resent.
        # Requests go out on the subscriber's connection: one socket, one actor and one loop turn carry a
        # request, its acceptance, its reply and the reply's acknowledgement (the next request's PUB and
        # this reply's ACK leave in one flush), where two connections paid for a turn and heartbeats each.
        publisher = BrokerPublisher.from_config(
            config,
            name=f"{config.name}-client-publisher",
            durable=False,
            settings=settings,
            service=subscriber.service,
        )
        return cls(topic, publisher, subscriber)

    def __repr__(self) -> str:
        return f"<BrokerClient topic={self.topic!r} pending={len(self._pending)}>"

    async def start(self) -> None:
        """Subscribe to the reply topic, then connect the publisher (idempotent)."""
        if not self._started:
            await self.subscriber.start()  # first, so no reply can arrive before anyone listens
            await self.publisher.start()
            self._started = True

    async def stop(self, timeout: float | None = None) -> None:
        """Disconnect both sides (idempotent)."""
        self._started = False
        await self.publisher.stop(timeout)
        await self.subscriber.stop(timeout)

    async def send(self, message: BrokerMessage) -> None:
        """Send ``message``, asking for the reply on this client's topic unless it names another."""
        if not self._started:  # not an await per request: a coroutine object costs more than the check
            await self.start()
        if message.reply_topic is None and isinstance(message, BrokerMessageV1):
            message = message.with_reply_topic(self.topic)
        if message.reply_topic == self.topic:
            self._pending.add(message.identifier)
        await self.publisher.send(message)

    async def receive(self) -> BrokerMessage:
        """The next reply (or other message on this client's topic)."""
        if not self._started:
            await self.start()
        while True:
            message = await self.subscriber.receive()
            identifier = message.identifier
            if identifier in self._pending:
                self._pending.discard(identifier)
                return message
            if self._abandoned.check_and_remember(message.topic, identifier):
                logger.info("%r dropped a late reply to abandoned request %s", self, identifier)
                continue
            return message

    async def receive_many(self, count: int, timeout: float = 60) -> AsyncIterator[BrokerMessage]:
        """Yield the next ``count`` messages, all within ``timeout`` seconds.

        Raises:
            MinosHandlerNotFoundEnoughEntriesException: Fewer than ``count`` arrived in time; the requests
                still pending are abandoned, so their late replies are dropped.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for received in range(count):
            try:
                message = await asyncio.wait_for(self.receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                for identifier in self._pending:
                    self._abandoned.check_and_remember(self.topic, identifier)
                self._pending.clear()
                raise MinosHandlerNotFoundEnoughEntriesException(
                    f"only {received} of {count} messages arrived on {self.topic!r} within {timeout} s"
                ) from None
            yield message


class BrokerClientPool(StartStop):
    """Lends BrokerClients out, creating up to ``maxsize``; a client is reused once given back.

    Args:
        config: Where clients find their broker.
        maxsize: How many clients may exist at once; ``acquire`` waits when all are lent.
    """

    def __init__(self, config: Config, *, maxsize: int = 5) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize!r}")
        self.config = config
        self.maxsize = maxsize
        self._idle: list[BrokerClient] = []
        self._all: list[BrokerClient] = []
        self._available = asyncio.Semaphore(maxsize)

    @classmethod
    def from_config(cls, config: ConfigSource, *, maxsize: int = 5) -> Self:
        """A pool of clients on the broker that ``interfaces.broker`` names."""
        config = as_config(config)
        return cls(config, maxsize=maxsize)

    async def start(self) -> None:
        """Nothing to start: clients are created and started as they are first lent."""

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[BrokerClient]:
        """Lend a started client; REQUEST_REPLY_TOPIC_CONTEXT_VAR names its topic meanwhile."""
        async with self._available:
            client = self._idle.pop() if self._idle else None
            if client is None:
                client = BrokerClient.from_config(self.config)
                self._all.append(client)
            await client.start()
            token = REQUEST_REPLY_TOPIC_CONTEXT_VAR.set(client.topic)
            try:
                yield client
            finally:
                REQUEST_REPLY_TOPIC_CONTEXT_VAR.reset(token)
                self._idle.append(client)

    async def stop(self) -> None:
        """Stop every client the pool created."""
        clients, self._all, self._idle = self._all, [], []
        for client in clients:
            await client.stop()
