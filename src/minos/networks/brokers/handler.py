"""BrokerHandler: runs a dispatcher on what a subscriber receives, through a dispatch sink in its actor.

The sink (``sink.DispatchSink``, or ``traced.TracedDispatchSink`` when tracing is on) does the handling,
retries and dead letters; the handler builds it each time the subscriber's actor starts, opens and
closes the durable inbox's store, and reads the settings from a ``Config``.
"""

from __future__ import annotations

import asyncio
from typing import Self

from minos.common import ConfigSource, as_config

from ..actors import StartStop
from ..durable import Inbox
from ..enroute import BrokerDispatcher
from .config import DEAD_LETTER_SUFFIX, RetryPolicy, broker_settings
from .dispatch_stats import DispatchStats
from .peer import PeerHandle
from .sink import DispatchSink
from .subscriber import BrokerSubscriber
from .traced import dispatch_sink

__all__ = ["BrokerHandler"]


class BrokerHandler(StartStop):
    """Runs ``dispatcher`` on what ``subscriber`` receives, inside the subscriber's actor.

    Handlers run in the subscriber actor's event loop (not the caller's): at most ``concurrency`` at
    once, each message acknowledged after its handler finished and its reply was accepted.

    Args:
        dispatcher: Picks and runs the handler of each message.
        subscriber: Where the messages come from; it must not be started yet.
        concurrency: How many handlers run at once (1 keeps the order of each publisher's topic).
        retries: How failing handlers are retried (see ``DispatchSink``); None tries each message once.
        dead_letter_topic: Where messages go after their last failed attempt; None for nowhere.
        inbox: Makes the handler durable (see ``DispatchSink``); its store is opened at start, closed at stop.
    """

    def __init__(
        self,
        dispatcher: BrokerDispatcher,
        subscriber: BrokerSubscriber,
        concurrency: int = 5,
        *,
        retries: RetryPolicy | None = None,
        dead_letter_topic: str | None = None,
        inbox: Inbox | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        self.dispatcher = dispatcher
        self.subscriber = subscriber
        self.concurrency = concurrency
        self.retries = retries
        self.dead_letter_topic = dead_letter_topic
        self.inbox = inbox
        self.sink: DispatchSink | None = None
        """The sink of the actor's current incarnation (its counters), once started."""
        self.stats = DispatchStats(dispatcher.topics)
        """Per-topic counters, kept across the actor's restarts."""
        subscriber.deliver_to(self._make_sink)
        self._stopped: asyncio.Event | None = None

    @classmethod
    def from_config(
        cls, config: ConfigSource, dispatcher: BrokerDispatcher, *, group: str | None = None
    ) -> Self:
        """A handler of ``dispatcher``'s topics on the broker ``config`` names, with its retries and dead letters.

        Raises:
            ValueError: ``dispatcher`` handles no topic.
        """
        config = as_config(config)
        settings = broker_settings(config)
        if group is None or group == settings.group:
            dead_letter_topic = settings.dead_letter_topic
        else:
            dead_letter_topic = f"{group}{DEAD_LETTER_SUFFIX}"
        subscriber = BrokerSubscriber.from_config(config, dispatcher.topics, group=group)
        inbox = None
        if settings.durable is not None:
            inbox = Inbox(settings.durable.open_store(f"{config.name}-inbox"), subscriber.group)
        return cls(
            dispatcher,
            subscriber,
            settings.concurrency,
            retries=settings.retries,
            dead_letter_topic=dead_letter_topic,
            inbox=inbox,
        )

    def _make_sink(self, handle: PeerHandle) -> DispatchSink:
        self.sink = dispatch_sink(self.subscriber.group)(
            handle,
            self.dispatcher,
            self.concurrency,
            self.subscriber.duplicates,
            retries=self.retries,
            dead_letter_topic=self.dead_letter_topic,
            inbox=self.inbox,
            stats=self.stats,
        )
        return self.sink

    async def start(self) -> None:
        """Open the inbox's store (durable mode), connect, subscribe and start handling (idempotent).

        Raises:
            StoreError: The inbox's store cannot be opened.
        """
        if self.inbox is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.inbox.store.open)
        await self.subscriber.start()

    async def stop(self, timeout: float | None = None) -> None:
        """Let running handlers finish (bounded), return the rest to the broker, disconnect."""
        await self.subscriber.stop(timeout)
        if self.inbox is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.inbox.store.close)
        if self._stopped is not None:
            self._stopped.set()

    async def run(self) -> None:
        """Start handling and return only when ``stop`` is called (or the task is cancelled, which stops)."""
        self._stopped = asyncio.Event()
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.stop()
