"""BrokerPort runs a service's broker side: the embedded broker if any, and the dispatcher actors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Self

from minos.common import Config, ConfigSource, as_config

from ..actors import ActorContext, ActorService, ChildSpec, LoopActor, StartStop
from ..actors.health import HealthRegistry
from ..durable import Inbox
from ..enroute import BrokerDispatcher
from ..transports import BrokerServer
from .config import BrokerSettings, RetryPolicy, broker_settings
from .dispatch_stats import DispatchStats
from .duplicates import DuplicateFilter
from .peer import ConnectionFactory, PeerHandle, Subscription
from .service import peer_spec
from .sink import DispatchSink
from .traced import dispatch_sink

__all__ = ["BrokerPort", "BrokerServerActor"]

logger = logging.getLogger(__name__)

_BIND_TIMEOUT = 5.0


class BrokerServerActor(LoopActor):
    """Runs a BrokerServer in the actor's loop: the embedded broker (``inproc://``, or more endpoints).

    Args:
        context: Name, parent and dead letters (see ``Actor``).
        server: Builds the server, in the actor's loop, once per incarnation.
    """

    def __init__(self, context: ActorContext | None = None, *, server: Callable[[], BrokerServer]) -> None:
        super().__init__(context, start_timeout=_BIND_TIMEOUT + 1)
        self._make_server = server
        self.server: BrokerServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def on_loop_start(self) -> None:
        self.server = server = self._make_server()
        self._task = task = asyncio.get_running_loop().create_task(server.run())
        bound = asyncio.get_running_loop().run_in_executor(None, server.wait_started, _BIND_TIMEOUT)
        waiting: set[asyncio.Future[Any]] = {task, bound}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # run() ended before serving: it could not bind
            bound.cancel()
            task.result()
            raise RuntimeError(f"the embedded broker stopped at once: {server!r}")
        if not await bound:
            server.stop()
            raise TimeoutError(f"the embedded broker did not bind {server!r} within {_BIND_TIMEOUT} s")

    async def on_loop_stop(self) -> None:
        if self.server is not None and self._task is not None:
            self.server.stop()
            await asyncio.gather(self._task, return_exceptions=True)


class BrokerPort(StartStop):
    """The broker side of a service, as one supervised tree of actors.

    Children, started in this order and stopped in reverse: the embedded broker (when the service runs
    one), then ``dispatchers`` dispatcher actors. Each dispatcher is a PeerActor with a connection of
    its own, joined to ``group`` for every topic ``dispatcher`` handles, running at most ``concurrency``
    handlers at once. A crashed child is restarted by the supervisor.

    Args:
        dispatcher: Runs the handlers; None for a port that only runs the embedded broker.
        connect: Builds each dispatcher's connection.
        group: The group the dispatchers join (the service's name).
        name: Names the actors and their threads.
        dispatchers: How many dispatcher actors.
        concurrency: How many handlers each dispatcher runs at once.
        window: How many deliveries each dispatcher may hold unacknowledged.
        close_timeout: Seconds in-flight handlers get to finish at stop.
        duplicates: The duplicate filter the dispatchers share.
        retries: How failing handlers are retried; None tries each message once.
        dead_letter_topic: Where messages go after their last failed attempt; None for nowhere.
        server: Builds the embedded broker; None when the broker runs elsewhere.
        inbox: Makes the dispatchers durable (see ``DispatchSink``); its store is opened before they
            start and closed after they stop.
        health: Where the port registers while started; None registers it nowhere.
    """

    def __init__(
        self,
        dispatcher: BrokerDispatcher | None,
        *,
        connect: ConnectionFactory,
        group: str,
        name: str = "broker-port",
        dispatchers: int = 1,
        concurrency: int = 5,
        window: int = 1000,
        close_timeout: float = 5.0,
        duplicates: DuplicateFilter | None = None,
        retries: RetryPolicy | None = None,
        dead_letter_topic: str | None = None,
        server: Callable[[], BrokerServer] | None = None,
        inbox: Inbox | None = None,
        health: HealthRegistry | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self._health = health
        self.inbox = inbox
        self.duplicates = duplicates if duplicates is not None else DuplicateFilter()
        self.server: BrokerServer | None = None
        """The embedded broker of the current incarnation, once started (for its stats)."""
        self.sinks: dict[str, DispatchSink] = {}
        """The current sink of each dispatcher, by dispatcher name, once started (for its backlog)."""
        self.stats: dict[str, DispatchStats] = {}
        """The per-topic counters of each dispatcher, by dispatcher name, kept across restarts."""
        children: list[ChildSpec] = []
        if server is not None:
            children.append(
                ChildSpec(
                    f"{name}-broker", partial(BrokerServerActor.start, server=partial(self._serve, server))
                )
            )
        self.handles: list[PeerHandle] = []
        if dispatcher is not None and dispatcher.topics:
            subscription = Subscription(group, tuple(dispatcher.topics))
            for index in range(1, dispatchers + 1):
                handle = PeerHandle(f"{name}-dispatcher-{index}")
                self.handles.append(handle)
                self.stats[handle.name] = DispatchStats(dispatcher.topics)
                sink = partial(
                    self._sink,
                    dispatcher=dispatcher,
                    concurrency=concurrency,
                    duplicates=self.duplicates,
                    retries=retries,
                    dead_letter_topic=dead_letter_topic,
                    inbox=inbox,
                    group=group,
                )
                children.append(
                    peer_spec(
                        handle.name,
                        handle,
                        connect=connect,
                        subscriptions=(subscription,),
                        sink=sink,
                        window=window,
                        close_timeout=close_timeout,
                    )
                )
        self.service = ActorService(name, children)

    @classmethod
    def from_config(
        cls,
        config: ConfigSource,
        *,
        settings: BrokerSettings | None = None,
        health: HealthRegistry | None = None,
    ) -> Self:
        """The port ``config`` describes: its services' broker handlers, and its embedded broker if any.

        Args:
            config: The service's configuration.
            settings: ``config``'s broker settings, when the caller has read them already (the composition
                root reads them once); read from ``config`` otherwise.
            health: Where the port registers while started; None registers it nowhere.
        """
        config = as_config(config)
        settings = broker_settings(config) if settings is None else settings
        return cls._build(config, settings, BrokerDispatcher.from_config(config), health)

    @classmethod
    def broker_only(
        cls, config: Config, *, settings: BrokerSettings | None = None, health: HealthRegistry | None = None
    ) -> Self:
        """Just the embedded broker ``config`` describes (nothing at all when the broker runs elsewhere).

        ``settings`` and ``health`` are those of :meth:`from_config`.
        """
        return cls._build(config, broker_settings(config) if settings is None else settings, None, health)

    @classmethod
    def _build(
        cls,
        config: Config,
        settings: BrokerSettings,
        dispatcher: BrokerDispatcher | None,
        health: HealthRegistry | None,
    ) -> Self:
        server = None
        if settings.transport == "zmq" and settings.embedded:
            curve = settings.curve
            server = partial(
                BrokerServer,
                [settings.endpoint, *settings.bind],
                max_messages=settings.max_messages,
                heartbeat_interval=settings.heartbeat_interval,
                # Loaded here, once: a refused key file stops the start-up, not each restart of the actor.
                curve=curve.server() if curve is not None and curve.for_broker else None,
                max_frame_size=settings.max_frame_size,
            )
        inbox = None
        if settings.durable is not None and dispatcher is not None and dispatcher.topics:
            inbox = Inbox(settings.durable.open_store(f"{config.name}-inbox"), settings.group)
        return cls(
            dispatcher,
            inbox=inbox,
            connect=settings.connection_factory(),
            group=settings.group,
            name=f"{config.name}-broker-port",
            dispatchers=settings.dispatchers,
            concurrency=settings.concurrency,
            window=settings.window,
            close_timeout=settings.close_timeout,
            duplicates=DuplicateFilter(max_entries=settings.duplicate_entries, ttl=settings.duplicate_ttl),
            retries=settings.retries,
            dead_letter_topic=settings.dead_letter_topic,
            server=server,
            health=health,
        )

    def _serve(self, server: Callable[[], BrokerServer]) -> BrokerServer:
        self.server = built = server()
        return built

    def _sink(
        self,
        handle: PeerHandle,
        *,
        dispatcher: BrokerDispatcher,
        concurrency: int,
        duplicates: DuplicateFilter,
        retries: RetryPolicy | None,
        dead_letter_topic: str | None,
        inbox: Inbox | None,
        group: str,
    ) -> DispatchSink:
        sink = dispatch_sink(group)(  # traced sinks are a subclass: untraced ones pay nothing
            handle,
            dispatcher,
            concurrency,
            duplicates,
            retries=retries,
            dead_letter_topic=dead_letter_topic,
            inbox=inbox,
            stats=self.stats[handle.name],
        )
        self.sinks[handle.name] = sink
        return sink

    @property
    def name(self) -> str:
        """The port's name, also its name in ``GET /system/health``."""
        return self.service.name

    def health(self) -> tuple[bool, str]:
        """Healthy while running with every dispatcher connected to the broker (for ``/system/health``)."""
        if not self.service.running:
            return False, "stopped"
        down = [handle.name for handle in self.handles if not handle.connected]
        if down:
            return False, f"not connected to the broker: {', '.join(down)}"
        return (
            True,
            f"{len(self.handles)} dispatchers connected" if self.handles else "embedded broker running",
        )

    async def start(self) -> None:
        """Start the embedded broker, then the dispatchers, once each is up (idempotent).

        Raises:
            StoreError: In durable mode, the inbox's store cannot be opened.
        """
        if self.inbox is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.inbox.store.open)
        await self.service.start()
        if self._health is not None:
            self._health.register_unique(self, self.name)

    async def stop(self, timeout: float | None = None) -> None:
        """Stop the dispatchers (running handlers finish within the close timeout), then the broker."""
        if self._health is not None:
            self._health.unregister(self)
        await self.service.stop(timeout)
        if self.inbox is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.inbox.store.close)
