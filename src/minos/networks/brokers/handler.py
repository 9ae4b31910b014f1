"""BrokerHandler and its dispatch sink: handlers run in the subscriber actor's own loop, a bounded number at once."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from ..enroute import BrokerDispatcher
from ..protocol import BrokerMessageV1, FrameCodec
from ..transports import Incoming
from .duplicates import DuplicateFilter
from .peer import PeerHandle, Settle
from .publisher import UNICAST
from .subscriber import BrokerSubscriber, decode_delivery

__all__ = ["BrokerHandler", "DispatchSink"]

logger = logging.getLogger(__name__)


class DispatchSink:
    """Runs the dispatcher on each delivery, in the actor's loop, at most ``concurrency`` at once.

    A delivery is acknowledged only once its handler has finished and its reply (if the sender asked
    for one) has been accepted by the broker, so a crash at any point before that means redelivery.
    With ``concurrency`` 1, messages are handled one after the other in delivery order, which keeps
    each publisher's messages on a topic in order.

    Args:
        handle: The actor's handle (acknowledgements and replies go through it).
        dispatcher: Turns a message into a reply payload.
        concurrency: How many handlers may run at once.
        duplicates: Drops a message whose topic and identifier were handled recently.
    """

    def __init__(
        self, handle: PeerHandle, dispatcher: BrokerDispatcher, concurrency: int, duplicates: DuplicateFilter
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        self._handle = handle
        self._dispatcher = dispatcher
        self._concurrency = concurrency
        self._duplicates = duplicates
        self._codec = FrameCodec()
        self._waiting: deque[tuple[BrokerMessageV1, int]] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._draining = False
        self.handled = 0

    def __call__(self, incoming: Incoming) -> None:
        message = decode_delivery(self._codec, incoming, self._handle, self._duplicates)
        if message is None:
            return
        if self._draining or len(self._running) >= self._concurrency:
            self._waiting.append((message, incoming.tag))
        else:
            self._start(message, incoming.tag)

    def _start(self, message: BrokerMessageV1, tag: int) -> None:
        task = asyncio.get_running_loop().create_task(self._handle_one(message, tag))
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not self._draining and self._waiting:
            self._start(*self._waiting.popleft())

    async def _handle_one(self, message: BrokerMessageV1, tag: int) -> None:
        payload = await self._dispatcher.dispatch(message)
        if message.reply_topic is not None:
            reply = BrokerMessageV1(message.reply_topic, payload, identifier=message.identifier)
            accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._handle.publish(reply.topic, self._codec.encode(reply)[1], UNICAST, _settle_into(accepted))
            try:
                await accepted
            except Exception as error:  # not acknowledged: the broker redelivers the request
                logger.warning(
                    "%s: the reply to %s was not accepted: %s", self._handle.name, message.identifier, error
                )
                return
        self.handled += 1
        self._handle.ack(tag)

    async def drain(self, timeout: float) -> None:
        """Start nothing new; let running handlers finish within ``timeout`` seconds, then cancel them.

        Messages still waiting are not acknowledged, so the broker gives them to another member.
        """
        self._draining = True
        self._waiting.clear()
        if not self._running:
            return
        _done, pending = await asyncio.wait(set(self._running), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning(
                "%s: %d handlers still running after %s s were cancelled; their messages will be redelivered",
                self._handle.name,
                len(pending),
                timeout,
            )
            await asyncio.gather(*pending, return_exceptions=True)


def _settle_into(future: asyncio.Future[None]) -> Settle:
    def settle(error: BaseException | None) -> None:  # in the same loop as the future
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    return settle


class BrokerHandler:
    """Runs ``dispatcher`` on what ``subscriber`` receives, inside the subscriber's actor.

    Handlers run in the subscriber actor's event loop (not the caller's): at most ``concurrency`` at
    once, each message acknowledged after its handler finished and its reply was accepted.

    Args:
        dispatcher: Picks and runs the handler of each message.
        subscriber: Where the messages come from; it must not be started yet.
        concurrency: How many handlers run at once (1 keeps the order of each publisher's topic).
    """

    def __init__(
        self, dispatcher: BrokerDispatcher, subscriber: BrokerSubscriber, concurrency: int = 5
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        self.dispatcher = dispatcher
        self.subscriber = subscriber
        self.concurrency = concurrency
        subscriber.deliver_to(
            lambda handle: DispatchSink(handle, dispatcher, concurrency, subscriber.duplicates)
        )
        self._stopped: asyncio.Event | None = None

    async def start(self) -> None:
        """Connect, subscribe and start handling (idempotent)."""
        await self.subscriber.start()

    async def stop(self, timeout: float | None = None) -> None:
        """Let running handlers finish (bounded), return the rest to the broker, disconnect."""
        await self.subscriber.stop(timeout)
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
