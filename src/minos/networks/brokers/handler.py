"""BrokerHandler and its dispatch sink: handlers run in the subscriber actor's own loop, a bounded number at once."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Coroutine, Generator
from functools import partial
from typing import Any

from ..enroute import BrokerDispatcher
from ..protocol import BrokerMessageV1, FrameCodec
from ..transports import Incoming
from .duplicates import DuplicateFilter
from .peer import PeerHandle
from .publisher import UNICAST
from .subscriber import BrokerSubscriber, decode_delivery

__all__ = ["BrokerHandler", "DispatchSink"]

logger = logging.getLogger(__name__)


class DispatchSink:
    """Runs the dispatcher on each delivery, in the actor's loop, at most ``concurrency`` at once.

    A delivery is acknowledged only once its handler has finished and its reply (if the sender asked
    for one) has been accepted by the broker, so a crash at any point before that means redelivery.
    A handler that does not suspend runs inline and never takes a slot; one that suspends holds one of
    the ``concurrency`` slots until it returns (not while its reply waits for the broker).
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
        self._running: set[asyncio.Task[None]] = set()  # handlers that suspended, as Tasks
        self._replies: set[asyncio.Future[None]] = set()  # replies the broker has not accepted yet
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
        """Run the handler at once, inline; only if it suspends does it become a Task (and take a slot).

        Most handlers never suspend, and a Task per message would cost more than the dispatch itself.
        The first step runs in a fresh context that the Task then keeps, so the context variables the
        dispatcher sets and resets stay in one context.
        """
        coroutine = self._handle_one(message, tag)
        context = contextvars.copy_context()
        try:
            blocked_on = context.run(coroutine.send, None)
        except StopIteration:
            return
        task = asyncio.get_running_loop().create_task(_resume(coroutine, blocked_on), context=context)
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        while not self._draining and self._waiting and len(self._running) < self._concurrency:
            self._start(*self._waiting.popleft())

    async def _handle_one(self, message: BrokerMessageV1, tag: int) -> None:
        payload = await self._dispatcher.dispatch(message)
        self.handled += 1
        if message.reply_topic is None:
            self._handle.ack(tag)
            return
        # The slot is free once the handler is done; the acknowledgement waits for the reply's acceptance.
        reply = BrokerMessageV1(message.reply_topic, payload, identifier=message.identifier)
        accepted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._replies.add(accepted)
        self._handle.publish(
            reply.topic, self._codec.encode(reply)[1], UNICAST, partial(self._replied, tag, accepted)
        )

    def _replied(self, tag: int, accepted: asyncio.Future[None], error: BaseException | None) -> None:
        self._replies.discard(accepted)
        if not accepted.done():
            accepted.set_result(None)
        if error is None:
            self._handle.ack(tag)
        else:  # not acknowledged: the broker delivers the request again
            logger.warning("%s: a reply was not accepted by the broker: %s", self._handle.name, error)

    async def drain(self, timeout: float) -> None:
        """Start nothing new; let running handlers and their replies finish within ``timeout`` seconds.

        Handlers still running then are cancelled. Messages still waiting are not acknowledged, so the
        broker gives them to another member.
        """
        self._draining = True
        self._waiting.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=timeout)
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
        if self._replies:
            await asyncio.wait(set(self._replies), timeout=max(0.0, deadline - loop.time()))


class _Resume:
    """Drives a coroutine that already ran its first step inline, from where it stopped."""

    __slots__ = ("_blocked_on", "_coroutine")

    def __init__(self, coroutine: Coroutine[Any, Any, None], blocked_on: Any) -> None:
        self._coroutine = coroutine
        self._blocked_on = blocked_on

    def __await__(self) -> Generator[Any, Any, None]:
        coroutine, to_yield = self._coroutine, self._blocked_on
        while True:
            try:
                value = yield to_yield
            except BaseException as error:  # cancellation and the like go to the coroutine
                try:
                    to_yield = coroutine.throw(error)
                except StopIteration:
                    return
            else:
                try:
                    to_yield = coroutine.send(value)
                except StopIteration:
                    return


async def _resume(coroutine: Coroutine[Any, Any, None], blocked_on: Any) -> None:
    await _Resume(coroutine, blocked_on)


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
