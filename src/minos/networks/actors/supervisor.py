"""Supervision: a Supervisor restarts children that fail, within a restart intensity, then escalates.

pykka has none: an exception in a ``tell`` handler stops an actor for good. A :class:`Supervisor`
starts its children from :class:`ChildSpec` factories, giving each an
:class:`~minos.networks.actors.ActorContext` whose parent is the supervisor. When a child fails it
tells the supervisor a :class:`~minos.networks.actors.ChildExited` (the base
:class:`~minos.networks.actors.Actor` does that), and the supervisor starts a fresh instance from the
same factory, under the same name. A child that stops without failing is not restarted.

Restart intensity, as in Erlang/OTP: at most ``max_restarts`` restarts within ``within_seconds``,
counted over all children. One failure more, and the supervisor escalates: it stops all its children
(last started, first stopped), calls ``on_escalate``, and fails with :class:`EscalationError`, which
its own parent sees as one failure of a child, and so on up the tree.

Clients find the current ref of a child, across restarts, with ``ask(GetChild(name))`` or, without a
round trip, through the supervisor's :class:`ChildDirectory` and its :class:`ChildHandle`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import pykka

from ..exceptions import MinosNetworkException
from .actor import Actor, ActorContext, ChildExited, stop_actor, wait_started, wait_stopped
from .bridge import ActorTimeoutError, ask
from .deadletters import DeadLetters, tell

__all__ = [
    "DEFAULT_RESTART_POLICY",
    "ActorFactory",
    "ChildDirectory",
    "ChildHandle",
    "ChildSpec",
    "EscalationError",
    "GetChild",
    "GetChildren",
    "RestartPolicy",
    "StopChildren",
    "Supervisor",
    "UnknownChildError",
]

logger = logging.getLogger(__name__)


class EscalationError(MinosNetworkException, RuntimeError):
    """A supervisor gave up: a child failed more often than its restart policy allows, or did not start.

    Its ``__cause__`` is the child's last error.

    Attributes:
        supervisor: Name of the supervisor that gave up.
        child: Name of the child whose failure made it give up.
        at_start: Whether it gave up while starting its children (a child did not start); the
            components built on actors (``ActorService``) then raise the child's own error instead.
    """

    def __init__(self, message: str, *, supervisor: str, child: str, at_start: bool = False) -> None:
        super().__init__(message)
        self.supervisor = supervisor
        self.child = child
        self.at_start = at_start

    def child_error(self) -> BaseException:
        """The error of the child that did not start, through nested supervisors; this one otherwise."""
        error: BaseException = self
        while isinstance(error, EscalationError) and error.at_start and error.__cause__ is not None:
            error = error.__cause__
        return error


class UnknownChildError(MinosNetworkException, LookupError):
    """No child of that name is supervised here."""


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """At most ``max_restarts`` restarts within any ``within_seconds``; one more failure escalates.

    Attributes:
        max_restarts: Restarts allowed in the window (0 escalates on the first failure).
        within_seconds: Length of the sliding window, in seconds of the supervisor's clock.
    """

    max_restarts: int = 3
    within_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be 0 or more, not {self.max_restarts!r}")
        if self.within_seconds <= 0:
            raise ValueError(f"within_seconds must be positive, not {self.within_seconds!r}")


DEFAULT_RESTART_POLICY = RestartPolicy()
"""Three restarts within five seconds."""


class ActorFactory(Protocol):
    """Starts one actor and returns its ref; ``MyActor.start`` itself is one.

    Called on the supervisor's thread, with the context the actor must pass to
    :class:`~minos.networks.actors.Actor`'s ``__init__``; use ``functools.partial`` for other
    arguments: ``partial(Publisher.start, endpoint="inproc://orders")``.
    """

    def __call__(self, *, context: ActorContext) -> pykka.ActorRef[Any]: ...


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child.

    Attributes:
        name: Unique among the supervisor's children; names the child's context and thread.
        factory: Starts the child (see :class:`ActorFactory`).
        stop_timeout: Seconds the child gets to stop before it is reported as stuck.
        start_timeout: Seconds the child's ``on_start`` may take; the next child starts only after it.
    """

    name: str
    factory: ActorFactory
    stop_timeout: float = 10.0
    start_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class GetChild:
    """Ask a supervisor for the current ref of its child ``name`` (raises :class:`UnknownChildError`)."""

    name: str


@dataclass(frozen=True, slots=True)
class GetChildren:
    """Ask a supervisor for ``{name: current ref}`` of all its children, in start order."""


@dataclass(frozen=True, slots=True)
class StopChildren:
    """Ask a supervisor to stop all its children within ``timeout`` seconds, last started first.

    It answers with the names of the children that did not stop in time (stuck in a handler); they
    stop on their own when their handler returns. The supervisor keeps running, without children.
    """

    timeout: float


class ChildDirectory:
    """The current ref of each child of one supervisor, readable from any thread without a round trip.

    Only the supervisor writes it (when a child starts or restarts); anyone may read it.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._refs: dict[str, pykka.ActorRef[Any]] = {}

    def __repr__(self) -> str:
        return f"<ChildDirectory {sorted(self._refs)}>"

    def names(self) -> tuple[str, ...]:
        """The children's names, in start order."""
        with self._changed:
            return tuple(self._refs)

    def get(self, name: str) -> pykka.ActorRef[Any]:
        """The current ref of child ``name`` (it may have died since; a tell then becomes a dead letter).

        Raises:
            UnknownChildError: No such child has been started.
        """
        with self._changed:
            try:
                return self._refs[name]
            except KeyError:
                raise UnknownChildError(
                    f"no child named {name!r}; the children are {sorted(self._refs)!r}"
                ) from None

    def wait_ref(
        self, name: str, *, other_than: pykka.ActorRef[Any] | None = None, timeout: float
    ) -> pykka.ActorRef[Any]:
        """Block until child ``name`` has a ref other than ``other_than`` (e.g. until it was restarted).

        Args:
            name: The child.
            other_than: A ref to wait past; None waits for the child's first start.
            timeout: Seconds to wait at most.

        Raises:
            ActorTimeoutError: No such ref within ``timeout``.
        """
        with self._changed:
            found = self._changed.wait_for(
                lambda: name in self._refs and self._refs[name] is not other_than, timeout
            )
            if not found:
                raise ActorTimeoutError(f"child {name!r} got no new ref within {timeout} s")
            return self._refs[name]

    def handle(self, name: str, *, dead_letters: DeadLetters) -> ChildHandle:
        """A handle that always reaches the current incarnation of child ``name``."""
        return ChildHandle(directory=self, name=name, dead_letters=dead_letters)

    def _set(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        with self._changed:
            self._refs[name] = ref
            self._changed.notify_all()


@dataclass(frozen=True, slots=True)
class ChildHandle:
    """Reaches a supervised child by name, whichever incarnation is current.

    Attributes:
        directory: The supervisor's directory.
        name: The child's name.
        dead_letters: Where a message to a dead child is recorded.
    """

    directory: ChildDirectory
    name: str
    dead_letters: DeadLetters

    @property
    def ref(self) -> pykka.ActorRef[Any]:
        """The child's current ref."""
        return self.directory.get(self.name)

    def tell(self, message: object) -> bool:
        """Send without waiting; a message to a dead child becomes a dead letter (returns False)."""
        return tell(self.ref, message, dead_letters=self.dead_letters)

    async def ask(self, message: object, *, timeout: float | None = None) -> Any:
        """Ask the current incarnation and await its answer (see :func:`~minos.networks.actors.ask`)."""
        return await ask(self.ref, message, timeout=timeout)


class Supervisor(Actor):
    """Starts children, restarts the ones that fail, and escalates when they fail too often.

    Children start in ``on_start``, in order, each once the one before has finished its ``on_start``;
    if one does not start, the supervisor stops those already started and escalates. A restarted
    child that fails to start counts as one more restart. Stopping the supervisor stops its children, last started first,
    each within its ``stop_timeout``; a child stuck in a handler is logged and left to stop on its own.

    Args:
        context: Name, parent and dead-letter sink; the children share its dead-letter sink.
        children: What to start, in order; names must be unique.
        policy: Restart intensity.
        clock: Time source of the intensity window (tests pass a fake clock).
        on_escalate: Called on the supervisor's thread when it gives up, before it fails; it must not
            block. A root supervisor has no parent, so this is how its owner learns.
        directory: Where the children's current refs are published; one is made if not given.
    """

    def __init__(
        self,
        context: ActorContext | None = None,
        *,
        children: Sequence[ChildSpec],
        policy: RestartPolicy = DEFAULT_RESTART_POLICY,
        clock: Callable[[], float] = time.monotonic,
        on_escalate: Callable[[EscalationError], None] | None = None,
        directory: ChildDirectory | None = None,
    ) -> None:
        super().__init__(context)
        names = [spec.name for spec in children]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique, got {names!r}")
        self.policy = policy
        self.directory = directory if directory is not None else ChildDirectory()
        self._specs = {spec.name: spec for spec in children}
        self._clock = clock
        self._on_escalate = on_escalate
        self._refs: dict[str, pykka.ActorRef[Any]] = {}
        self._stopped: set[str] = set()
        self._restarts: deque[float] = deque()
        self._giving_up = False

    def on_start(self) -> None:
        for spec in self._specs.values():
            try:
                self._start_child(spec)
            except Exception as error:
                self._escalate(spec.name, error, why=f"child {spec.name!r} did not start", at_start=True)

    def on_stop(self) -> None:
        self._stop_children(timeout=self._total_stop_timeout())

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop_children(timeout=self._total_stop_timeout())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildExited):
            self._child_exited(message)
            return None
        if isinstance(message, GetChild):
            return self.directory.get(message.name)
        if isinstance(message, GetChildren):
            return dict(self._refs)
        if isinstance(message, StopChildren):
            return self._stop_children(timeout=message.timeout)
        return super().on_receive(message)

    def _start_child(self, spec: ChildSpec) -> None:
        # Synchronous, as in OTP: the child's on_start has finished (say, its sockets are bound) before
        # the next child starts, so later children may rely on earlier ones.
        context = ActorContext(name=spec.name, parent=self.actor_ref, dead_letters=self.context.dead_letters)
        ref = spec.factory(context=context)
        self._refs[spec.name] = ref
        self.directory._set(spec.name, ref)
        try:
            wait_started(ref, spec.start_timeout)  # raises what on_start raised
        except ActorTimeoutError:
            stop_actor(ref, timeout=0.0)  # it stops once on_start ends; do not wait for it here
            raise

    def _child_exited(self, notice: ChildExited) -> None:
        current = self._refs.get(notice.name)
        if current is None or current.actor_urn != notice.actor_urn or notice.name in self._stopped:
            return  # an older incarnation, or a child we are stopping
        if self._giving_up:
            return
        error: BaseException = notice.error
        while True:
            now = self._clock()
            while self._restarts and now - self._restarts[0] > self.policy.within_seconds:
                self._restarts.popleft()
            if len(self._restarts) >= self.policy.max_restarts:
                self._escalate(
                    notice.name,
                    error,
                    why=(
                        f"child {notice.name!r} failed after {len(self._restarts)} restarts within "
                        f"{self.policy.within_seconds} s (at most {self.policy.max_restarts} allowed)"
                    ),
                )
            self._restarts.append(now)
            logger.warning(
                "%s restarts child %r after %r (restart %d of at most %d within %s s)",
                self,
                notice.name,
                error,
                len(self._restarts),
                self.policy.max_restarts,
                self.policy.within_seconds,
            )
            try:
                self._start_child(self._specs[notice.name])
            except Exception as start_error:
                logger.error("%s could not restart child %r: %r", self, notice.name, start_error)
                error = start_error
            else:
                return

    def _escalate(self, child: str, error: BaseException, *, why: str, at_start: bool = False) -> None:
        self._giving_up = True
        escalation = EscalationError(
            f"supervisor {self.actor_name!r} gives up: {why}; it stops all its children and fails",
            supervisor=self.actor_name,
            child=child,
            at_start=at_start,
        )
        escalation.__cause__ = error
        # At start, whoever started this supervisor is waiting for it and gets the error: no log line.
        logger.log(logging.DEBUG if at_start else logging.ERROR, "%s", escalation)
        self._stop_children(timeout=self._total_stop_timeout())
        if self._on_escalate is not None:
            try:
                self._on_escalate(escalation)
            except Exception:
                logger.exception("on_escalate of %s raised", self)
        raise escalation

    def _stop_children(self, *, timeout: float) -> tuple[str, ...]:
        # Last started, first stopped. Each child waits its turn for at most its fair share of what is
        # left of `timeout` (and at most its own stop_timeout), so one stuck child cannot eat the budget
        # of those after it; a child that overran its turn is waited for again at the end.
        deadline = time.monotonic() + timeout
        names = [name for name in reversed(list(self._refs)) if name not in self._stopped]
        late: list[tuple[str, pykka.ActorRef[Any], float]] = []
        for index, name in enumerate(names):
            self._stopped.add(name)
            ref, now = self._refs[name], time.monotonic()
            give_up_at = min(deadline, now + self._specs[name].stop_timeout)
            turn = max(0.0, min(give_up_at - now, (deadline - now) / (len(names) - index)))
            if not stop_actor(ref, timeout=turn):
                late.append((name, ref, give_up_at))
        stuck = []
        for name, ref, give_up_at in late:
            if not wait_stopped(ref, max(0.0, give_up_at - time.monotonic())):
                stuck.append(name)
                logger.error(
                    "%s: child %r did not stop in time (stuck in a handler?); it stops when its handler ends",
                    self,
                    name,
                )
        return tuple(stuck)

    def _total_stop_timeout(self) -> float:
        return sum(spec.stop_timeout for spec in self._specs.values())
