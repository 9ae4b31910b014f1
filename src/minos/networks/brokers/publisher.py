"""BrokerPublisher sends messages to the broker through an actor of its own; InMemoryBrokerPublisher records them."""

from __future__ import annotations

import asyncio
import logging
from abc import ABCMeta
from functools import partial
from typing import Self

from minos.common import ConfigSource, as_config

from ..actors import StartStop
from ..actors.handoff import LoopHandoff, resolve
from ..durable import OUTBOX_HEADER, Outbox, OutboxRow, decode_receipt, receipt_topic
from ..exceptions import FrameDecodeError
from ..protocol import (
    BrokerMessage,
    BrokerMessageV1Strategy,
    FrameCodec,
)
from ..protocol.frames import MULTICAST_CODE, UNICAST_CODE
from ..tracing import Tracing, current
from ..transports import BrokerFullError, BrokerUnavailableError, ConnectionClosedError, Incoming
from ..transports.connection import RoomWaiters
from .config import BrokerSettings, broker_settings
from .peer import ConnectionFactory, PeerHandle, Subscription
from .service import PeerService

__all__ = ["BrokerPublisher", "InMemoryBrokerPublisher", "strategy_code"]

logger = logging.getLogger(__name__)


def strategy_code(message: BrokerMessage) -> int:
    """The strategy's code on the broker's wire."""
    return MULTICAST_CODE if message.strategy is BrokerMessageV1Strategy.MULTICAST else UNICAST_CODE


class BrokerPublisher(StartStop, metaclass=ABCMeta):
    """Sends messages to a broker; ``send`` returns once the broker has accepted the message.

    The connection lives in an actor's loop thread; ``send`` hands the encoded message over and awaits
    the broker's acceptance without blocking the caller's loop. At most ``max_in_flight`` sends wait
    for acceptance at once: more wait their turn (``send``) or are refused (``send_nowait``).

    The actor's I/O runs in the loop that starts the publisher (``in_caller_loop``, the default), so a
    send reaches the socket, and its acceptance comes back, without a thread hop; that loop must keep
    running until ``stop`` returns. Pass ``in_caller_loop=False`` to give the actor a loop thread of its
    own, e.g. when the caller's loop is often blocked (the broker declares a peer silent for three
    heartbeat intervals lost).

    With an ``outbox`` (durable mode, ``interfaces.broker.durable``), ``send`` returns once the message
    is committed to the outbox instead, and the outbox sends it, and sends it again, until the
    receiving side confirms it: see ``minos.networks.durable.outbox`` for the exact promise.

    Args:
        connect: Builds the connection to the broker.
        name: Names the actor and its threads.
        max_in_flight: How many messages may await the broker's acceptance at once.
        close_timeout: Seconds queued messages get to reach the broker at stop.
        send_timeout: Seconds ``send`` waits for the broker's acceptance (or, with an outbox, for room in
            it) before it fails with BrokerUnavailableError; None waits as long as it takes.
        outbox: Makes the publisher durable; its store is opened at start and closed at stop.
        in_caller_loop: Run the actor's I/O in the caller's loop (default) rather than a thread of its own.
        service: Send through this peer service (its actor and connection) instead of one of its own,
            e.g. a subscriber's, so that one socket carries both; then ``connect``, ``close_timeout``
            and ``in_caller_loop`` are the service's, and starting or stopping the publisher starts or
            stops the service. Not with an ``outbox``, whose receipts need a service of its own.

    Raises:
        ValueError: ``send_timeout`` is not positive, or ``service`` is given with an ``outbox``.
    """

    def __init__(
        self,
        connect: ConnectionFactory,
        *,
        name: str = "publisher",
        max_in_flight: int = 10_000,
        close_timeout: float = 5.0,
        send_timeout: float | None = None,
        outbox: Outbox | None = None,
        in_caller_loop: bool = True,
        service: PeerService | None = None,
    ) -> None:
        if send_timeout is not None and not send_timeout > 0:
            raise ValueError(
                f"send_timeout must be a positive number of seconds or None, got {send_timeout!r}"
            )
        if service is not None and outbox is not None:
            raise ValueError(
                f"publisher {name!r}: an outbox needs a peer service of its own for its receipts; pass "
                "either service or outbox, not both"
            )
        self.outbox = outbox
        self.send_timeout = send_timeout
        if service is not None:
            self.service = service
        elif outbox is None:
            self.service = PeerService(
                name, connect=connect, close_timeout=close_timeout, in_caller_loop=in_caller_loop
            )
        else:
            topic = receipt_topic(outbox.origin)
            self.service = PeerService(
                name,
                connect=connect,
                close_timeout=close_timeout,
                subscriptions=(Subscription(topic, (topic,), transient=True),),
                sink=partial(_ReceiptSink, outbox=outbox),
                in_caller_loop=in_caller_loop,
            )
        self.max_in_flight = max_in_flight
        self._codec = FrameCodec()
        self._in_flight = 0  # sends awaiting the broker's acceptance
        self._room = RoomWaiters()  # sends waiting for one of them to end
        self._handoff: LoopHandoff | None = None
        self._tracing: Tracing | None = None  # decided at start (see minos.networks.tracing)

    @classmethod
    def from_config(
        cls,
        config: ConfigSource,
        *,
        name: str | None = None,
        durable: bool = True,
        settings: BrokerSettings | None = None,
        service: PeerService | None = None,
    ) -> Self:
        """Build a publisher for the broker that ``interfaces.broker`` in ``config`` names.

        With ``interfaces.broker.durable`` (and ``durable``, the default), the publisher is durable; its
        outbox is named after ``durable.origin`` and ``name``, so two durable publishers sharing a store
        need distinct names. ``durable=False`` builds a plain publisher whatever the config says (request
        and reply clients, one-shot sends from the command line).

        Args:
            config: The service's configuration.
            name: Names the publisher's actor and its outbox; ``<service>-publisher`` by default.
            durable: False for a plain publisher even when the config sets ``interfaces.broker.durable``.
            settings: ``config``'s broker settings, when the caller has read them already (the composition
                root reads them once); read from ``config`` otherwise.
            service: As in the constructor (the publisher is then plain, whatever ``durable`` says).
        """
        config = as_config(config)
        settings = broker_settings(config) if settings is None else settings
        name = name or f"{config.name}-publisher"
        outbox = None
        if settings.durable is not None and durable and service is None:
            store = settings.durable
            outbox = Outbox(
                store.open_store(name),
                f"{store.origin}:{name}",
                max_pending=store.max_pending,
                resend_after=store.resend_after,
                max_resend_interval=store.max_resend_interval,
            )
        return cls(
            settings.connection_factory(), name=name, outbox=outbox, service=service, **settings.publisher()
        )

    async def start(self) -> None:
        """Connect to the broker, and with an outbox send again what it kept from before (idempotent).

        Raises:
            StoreError: The outbox's store cannot be opened.
        """
        if self._handoff is None:
            self._handoff = LoopHandoff(asyncio.get_running_loop())
        self._tracing = current()
        await self.service.start()
        if self.outbox is not None:
            await self.outbox.start(self._send_row)

    async def stop(self, timeout: float | None = None) -> None:
        """Let accepted-pending messages reach the broker, then disconnect (idempotent).

        An outbox keeps its unconfirmed rows for the next start.
        """
        if self.outbox is not None:
            await self.outbox.stop()
        await self.service.stop(timeout)
        self._room.fail(
            ConnectionClosedError(f"{self.service.name} stopped before the message could be sent")
        )
        if self.outbox is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.outbox.store.close)

    async def send(self, message: BrokerMessage) -> None:
        """Send ``message`` and return once the broker has accepted it, waiting while too many are in flight.

        The publisher starts on first use if it was not started. While the broker is unreachable the
        connection keeps reconnecting and sending again, and ``send`` keeps waiting, for ``send_timeout``
        seconds at most when one is set; ``stop`` fails what is still waiting with ConnectionClosedError.
        With an outbox, ``send`` returns once the message is committed to it, and waits only while the
        outbox is full.

        Raises:
            BrokerUnavailableError: ``send_timeout`` passed without the broker's acceptance. A message not
                sent yet is withdrawn (over NATS); one already sent may still be stored, so sending it
                again is safe: receivers drop the copy by its identifier.
            FrameEncodeError: The content holds a type the wire cannot carry; nothing was sent.
            ConnectionClosedError: The publisher stopped before the broker accepted the message.
            StoreError: With an outbox, the message could not be stored; nothing was sent.
        """
        if self.send_timeout is None:
            if self._tracing is None and self._handoff is not None and self.service.running:
                await self._deliver(message)  # what _send comes to here, one coroutine fewer per message
            else:
                await self._send(message)
            return
        try:
            async with asyncio.timeout(self.send_timeout):
                await self._send(message)
        except TimeoutError as error:
            raise BrokerUnavailableError(
                f"{self.service.name}: {self.service.handle.describe()} did not accept the message to "
                f"{message.topic!r} within the send_timeout of {self.send_timeout} s; check that the broker "
                "runs and is reachable, or raise interfaces.broker.send_timeout. Sending it again is safe: "
                "receivers drop a copy by its identifier"
            ) from error

    async def _send(self, message: BrokerMessage) -> None:
        if self._handoff is None or not self.service.running:
            await self.start()
        if self._tracing is not None:  # off, a message pays this one check
            with self._tracing.publishing(message) as message:  # a copy carrying the publish span
                await self._deliver(message)
            return
        await self._deliver(message)

    async def _deliver(self, message: BrokerMessage) -> None:
        if self.outbox is not None:
            await self._store(self.outbox, message)
            return
        body = self._codec.encode(message)[1]
        if self._in_flight >= self.max_in_flight:
            await self._room.wait(self._full, self._check_running)
        # One coroutine per send, no semaphore: a counter bounds what is in flight, and in the caller's
        # loop the message goes straight to the connection (see PeerHandle.publish_in_loop).
        self._in_flight += 1
        try:
            topic, code = message.topic, strategy_code(message)
            accepted = self.service.handle.publish_in_loop(topic, body, code)
            if accepted is None:  # another thread's loop, or work queued ahead: through the handle's queue
                assert self._handoff is not None
                handoff = self._handoff
                if handoff.loop is not asyncio.get_running_loop():  # e.g. a handler's: settle in its loop
                    handoff = LoopHandoff(asyncio.get_running_loop())
                queued: asyncio.Future[None] = handoff.loop.create_future()
                self.service.handle.publish(
                    topic, body, code, lambda error: handoff.call(resolve, queued, None, error)
                )
                accepted = queued
            await accepted
        finally:
            self._in_flight -= 1
            self._room.wake(self.max_in_flight - self._in_flight)

    async def send_nowait(self, message: BrokerMessage) -> None:
        """Like ``send``, but refuse at once when ``max_in_flight`` messages are already in flight.

        Raises:
            BrokerFullError: Too many messages are in flight (or, with an outbox, wait for their
                receipt); nothing was sent. Retry later.
        """
        if self._handoff is None or not self.service.running:
            await self.start()
        if self.outbox is not None:
            if self.outbox.pending >= self.outbox.max_pending:
                raise BrokerFullError(
                    f"{self.outbox.max_pending} messages already wait in the outbox for their receipt; "
                    "await send() to wait for room"
                )
        elif self._in_flight >= self.max_in_flight:
            self._codec.encode(message)  # content the wire cannot carry is refused as such first
            raise BrokerFullError(
                f"{self.max_in_flight} messages already await the broker; await send() to wait for room"
            )
        await self.send(message)

    def _full(self) -> bool:
        return self._in_flight >= self.max_in_flight

    def _check_running(self) -> None:
        if not self.service.running:
            raise ConnectionClosedError(f"{self.service.name} stopped before the message could be sent")

    async def _store(self, outbox: Outbox, message: BrokerMessage) -> None:
        # The stored copy names the outbox's receipt topic in a header; encoded with it, not rebuilt.
        headers = {**message.payload.headers, OUTBOX_HEADER: receipt_topic(outbox.origin)}
        body = self._codec.encode(message, headers=headers)[1]
        await outbox.put(OutboxRow(message.identifier, message.topic, strategy_code(message), body))

    def _send_row(self, row: OutboxRow) -> None:
        self.service.handle.publish(row.topic, row.body, row.strategy, _log_refusal)


def _log_refusal(error: BaseException | None) -> None:
    if error is not None:  # the outbox sends it again later
        logger.debug("an outbox message was not accepted by the broker: %s", error)


class _ReceiptSink:
    """Takes the receipts of a durable publisher's messages, in its actor's loop, and clears its outbox."""

    def __init__(self, handle: PeerHandle, *, outbox: Outbox) -> None:
        self._handle = handle
        self._outbox = outbox
        self._codec = FrameCodec()

    def __call__(self, incoming: Incoming) -> None:
        try:
            identifiers = decode_receipt(self._codec, incoming.topic, incoming.body)
        except FrameDecodeError as error:
            logger.error("%s: dropped a malformed receipt: %s", self._handle.name, error)
        else:
            self._outbox.confirm(identifiers)
        self._handle.ack(incoming.tag)

    async def drain(self, timeout: float) -> None:
        """Nothing to finish: receipts are handled as they come."""


class InMemoryBrokerPublisher(StartStop):
    """A publisher for tests that keeps what is sent in ``messages`` instead of sending it.

    Messages are still encoded, so content the wire cannot carry fails here as it would for real.
    """

    def __init__(self) -> None:
        self.messages: list[BrokerMessage] = []
        self._codec = FrameCodec()

    @classmethod
    def from_config(cls, config: ConfigSource) -> Self:
        """An empty one, as 0.7 built its twin from the config (the config is checked, nothing is read)."""
        as_config(config)
        return cls()

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self, timeout: float | None = None) -> None:
        """Nothing to stop."""

    async def send(self, message: BrokerMessage) -> None:
        """Record ``message``."""
        self._codec.encode(message)
        self.messages.append(message)

    send_nowait = send


# As in minos 0.7, the in-memory twin counts as one (``isinstance(x, BrokerPublisher)``): it has the same life cycle and
# send, send_nowait, so code typed against the real one takes it in tests.
BrokerPublisher.register(InMemoryBrokerPublisher)
