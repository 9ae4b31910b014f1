"""What a NatsConnection stands on at the server: the client's link (``connect``: reached within
``connect_timeout``, then reconnecting forever with backoff), and the JetStream stream and pull consumers,
made or checked, the API calls behind them retried while a cluster elects its leaders, and made again once
a connection is back (provisioning)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from .connection import BrokerUnavailableError
from .subjects import NatsSettings, consumer_description, consumer_name, subject_of

__all__ = [
    "ClusterNotReadyError",
    "Consumer",
    "Restorer",
    "backoff",
    "connect",
    "consumer_for",
    "ensure_consumer",
    "ensure_stream",
    "provision_consumer",
    "provision_stream",
    "while_electing",
]

logger = logging.getLogger(__name__)

_NO_PEERS: Final = 10005  # JetStream: no suitable peers for placement (the cluster does not see enough nodes)
_FIRST_DELAY: Final = 0.05  # seconds before an API call goes again; doubles up to _MAX_DELAY
_MAX_DELAY: Final = 0.5
_RECONNECT_FIRST: Final = 0.05  # seconds; doubles per failed attempt up to reconnect_max_wait, with jitter


class ClusterNotReadyError(Exception):
    """JetStream cannot place a replicated stream or consumer yet: too few of its nodes are known or alive."""


@dataclass(slots=True)
class Consumer:
    """One durable pull consumer a connection reads from, and what its pull requests asked for.

    Its pull requests are answered on ``reply``, ``<inbox>.<generation>``: once the requests sent so far
    are written off (``forget_requests``), what the server still sends about them comes to an older
    subject, and can be told from what it says about the requests sent after.
    """

    name: str
    subject: str
    topic: bytes
    transient: bool
    description: str = ""
    inbox: str = ""  # the prefix of the reply subjects; the connection listens to <inbox>.*
    subscription: Subscription | None = None
    outstanding: int = 0  # deliveries asked for by pull requests and not received yet
    expires_at: float = 0.0  # when the last pull request expires at the server
    generation: int = 0  # how many times its pull requests were written off

    @property
    def reply(self) -> str:
        """The subject the pull requests sent now are answered on."""
        return f"{self.inbox}.{self.generation}"

    def forget_requests(self) -> None:
        """Count the pull requests sent so far as over, whatever the server may still say of them.

        A status of theirs that comes later (a 408 with the deliveries it did not make) would otherwise
        be taken off what the requests sent after asked for: more would be asked than the window has room for.
        """
        self.outstanding = 0
        self.generation += 1


def consumer_for(settings: NatsSettings, token: str, group: str, topic: str, *, transient: bool) -> Consumer:
    """The pull consumer of ``topic``'s ``token`` subject for ``group`` (``""``: the one every group shares).

    See ``subjects`` for the names and subjects.
    """
    return Consumer(
        consumer_name(token, group, topic),
        subject_of(settings.subject_prefix, token, topic),
        topic.encode(),
        transient,
        consumer_description(token, group, topic),
    )


async def while_electing(
    what: str, call: Callable[[], Awaitable[None]], settings: NatsSettings, owner: str
) -> None:
    """Run a JetStream API ``call``, again while the cluster cannot answer it, for 2 x connect_timeout.

    A cluster electing its meta or stream leader, or one without a quorum, answers 503, "no suitable peers"
    or not at all.

    Args:
        what: What the call does, for the messages ("check the stream").
        call: The API call.
        settings: The connection's settings (servers, stream, connect_timeout).
        owner: Who calls, for the messages (the connection's repr).

    Raises:
        BrokerUnavailableError: JetStream did not answer in time; the message names servers and stream.
    """
    loop = asyncio.get_running_loop()
    window = 2 * settings.connect_timeout
    deadline = loop.time() + window
    delay = _FIRST_DELAY
    while True:
        try:
            await call()
            return
        except (
            TimeoutError,
            nats.errors.NoRespondersError,
            nats.js.errors.ServiceUnavailableError,
            ClusterNotReadyError,
        ) as error:
            if loop.time() + delay >= deadline:
                raise BrokerUnavailableError(
                    f"NATS at {', '.join(settings.servers)} did not let {owner} {what} in stream "
                    f"{settings.stream!r} within {window} s ({error!r}): a JetStream cluster electing "
                    "its leaders or without a quorum of its nodes, or a server without JetStream (-js); "
                    "check the cluster's nodes, or raise interfaces.broker.nats.connect_timeout"
                ) from error
            logger.info("%s could not %s yet (%r); trying again in %.2f s", owner, what, error, delay)
            await asyncio.sleep(delay)  # sync-ok: backoff while the cluster elects a leader
            delay = min(_MAX_DELAY, 2 * delay)


async def ensure_stream(js: JetStreamContext, settings: NatsSettings) -> None:
    """Create the stream the settings describe, or check that the one there takes their subjects.

    Raises:
        BrokerUnavailableError: A stream of that name takes other subjects.
    """
    try:
        info = await js.stream_info(settings.stream)
    except nats.js.errors.NotFoundError:
        config = StreamConfig(
            name=settings.stream,
            description="minos.networks messages",
            subjects=settings.stream_subjects,
            retention=RetentionPolicy.INTEREST,
            discard=DiscardPolicy.NEW,
            max_msgs=settings.max_messages,
            storage=StorageType.FILE if settings.storage == "file" else StorageType.MEMORY,
            num_replicas=settings.replicas,
            duplicate_window=120.0,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError as error:
            if error.err_code == _NO_PEERS:
                raise ClusterNotReadyError(error.description or "no suitable peers for placement") from error
            await js.stream_info(settings.stream)  # made by another peer meanwhile: fine if it is there
        return
    subjects = info.config.subjects or []
    if not set(settings.stream_subjects) <= set(subjects):
        raise BrokerUnavailableError(
            f"the JetStream stream {settings.stream!r} takes {subjects!r}, not {settings.stream_subjects!r}; "
            "give interfaces.broker.nats another stream or subject_prefix"
        )


async def ensure_consumer(js: JetStreamContext, settings: NatsSettings, consumer: Consumer) -> None:
    """Create ``consumer`` in the stream, or check that the one there filters its subject.

    Raises:
        BrokerUnavailableError: A consumer of that name filters another subject.
    """
    config = ConsumerConfig(
        durable_name=consumer.name,
        description=consumer.description,
        filter_subject=consumer.subject,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait,
        max_deliver=-1,  # the connection counts deliveries itself and dead-letters
        max_ack_pending=-1,  # each member's window bounds what it holds
        inactive_threshold=settings.transient_ttl if consumer.transient else None,
        mem_storage=True if consumer.transient else None,
    )
    try:
        await js.add_consumer(settings.stream, config)
    except nats.js.errors.BadRequestError as error:
        if error.err_code == _NO_PEERS:
            raise ClusterNotReadyError(error.description or "no suitable peers for placement") from error
        info = await js.consumer_info(settings.stream, consumer.name)  # it exists, set up otherwise
        if info.config.filter_subject != consumer.subject:
            raise BrokerUnavailableError(
                f"the JetStream consumer {consumer.name!r} filters {info.config.filter_subject!r}, not "
                f"{consumer.subject!r}; delete it (nats consumer rm) and subscribe again"
            ) from error


async def provision_stream(js: JetStreamContext, settings: NatsSettings, owner: str) -> None:
    """``ensure_stream``, again while the cluster cannot answer (``while_electing``); ``owner`` as there."""
    await while_electing("check the stream", partial(ensure_stream, js, settings), settings, owner)


async def provision_consumer(
    js: JetStreamContext, settings: NatsSettings, consumer: Consumer, owner: str
) -> None:
    """``ensure_consumer``, again while the cluster cannot answer (``while_electing``); ``owner`` as there."""
    await while_electing(
        f"create the consumer {consumer.name}",
        partial(ensure_consumer, js, settings, consumer),
        settings,
        owner,
    )


def backoff(settings: NatsSettings, attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1`` to reach NATS again, before jitter: from 50 ms,
    doubling per failed attempt up to ``reconnect_max_wait``."""
    return min(settings.reconnect_max_wait, _RECONNECT_FIRST * 2.0 ** min(attempt, 16))


async def connect(
    nc: Client,
    settings: NatsSettings,
    owner: object,
    *,
    disconnected: Callable[[], Awaitable[None]],
    reconnected: Callable[[], Awaitable[None]],
) -> None:
    """Connect ``nc`` to the servers of ``settings`` within ``connect_timeout``; from then on it reconnects
    forever after a loss (``backoff``, with jitter), calling ``disconnected`` and ``reconnected``. Client
    errors are logged at debug level, naming ``owner``."""

    def next_server(servers: list[Any], info: dict[str, Any]) -> tuple[Any, float]:
        server = min(servers, key=lambda s: s.reconnects)
        return server, backoff(settings, server.reconnects) * random.uniform(0.5, 1.0)

    async def on_error(error: Exception) -> None:
        logger.debug("%r: NATS client error %r", owner, error)

    # nats-py retries the first connection forever when reconnecting is unbounded: bound it here.
    await asyncio.wait_for(
        nc.connect(
            servers=list(settings.servers),
            name=f"minos {settings.stream}",
            connect_timeout=max(1, round(settings.connect_timeout)),
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_to_server_handler=next_server,
            error_cb=on_error,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
        ),
        settings.connect_timeout,
    )


class Restorer:
    """Makes a connection's stream and consumers again once it is back: the server may have lost them.

    ``request`` starts a round in a task of its own (``task``); asked for again while one runs, it goes
    round once more before it ends. A round that fails goes again after a ``backoff`` with jitter. Once
    a round went through and none was asked for meanwhile (or the connection is no longer open),
    ``done`` is called. The pull requests of the consumers went with the link: none is outstanding after
    a round.

    Args:
        settings: The connection's settings.
        owner: The connection, named in log lines.
        is_open: Whether the connection is open (rounds stop when it is not).
        done: Called once the rounds are over.
    """

    def __init__(
        self, settings: NatsSettings, owner: object, *, is_open: Callable[[], bool], done: Callable[[], None]
    ) -> None:
        self.task: asyncio.Task[None] | None = None
        self._settings = settings
        self._owner = owner
        self._is_open = is_open
        self._done = done
        self._again = False  # asked for while a round ran: it goes round once more

    def request(self, js: JetStreamContext, consumers: Iterable[Consumer]) -> None:
        """Start the rounds, or have the ones under way check everything once more before they end."""
        self._again = True
        if self.task is not None and not self.task.done():
            return
        self.task = asyncio.get_running_loop().create_task(
            self._run(js, consumers), name=f"minos-nats-resume {self._settings.stream}"
        )

    async def _run(self, js: JetStreamContext, consumers: Iterable[Consumer]) -> None:
        settings = self._settings
        attempt = 0
        while self._is_open() and self._again:
            self._again = False
            try:
                await ensure_stream(js, settings)
                for consumer in consumers:
                    await ensure_consumer(js, settings, consumer)
                    consumer.forget_requests()
            except (
                nats.errors.Error,
                OSError,
                TimeoutError,
                BrokerUnavailableError,
                ClusterNotReadyError,
            ) as error:
                delay = backoff(settings, attempt)
                attempt += 1
                logger.warning(
                    "%r could not resume its consumers (%r); trying again in %.2f s",
                    self._owner,
                    error,
                    delay,
                )
                self._again = True
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # sync-ok: backoff between attempts
        self._done()
