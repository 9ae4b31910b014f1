"""The actor runtime: base actors, the asyncio bridge, event-loop actors, supervision and the actor system.

Mailboxes carry control (start, stop, settings, supervision); message frames travel on ZeroMQ sockets
owned by a :class:`LoopActor`'s loop thread. See each module for the rules it keeps.
"""

from .actor import (
    THREAD_PREFIX,
    Actor,
    ActorContext,
    ChildExited,
    await_stopped,
    stop_actor,
    wait_started,
    wait_stopped,
)
from .actor_system import ActorSystem, threads
from .bridge import ActorTimeoutError, ReplyFuture, ask, await_future, call
from .deadletters import DeadLetter, DeadLetters, tell
from .eventloop import LOOP_VARIABLE, loop_kind, new_event_loop, run_main
from .loop import BorrowedLoop, LoopActor, LoopClosedError
from .service import ActorService, StartStop
from .supervisor import (
    DEFAULT_RESTART_POLICY,
    ActorFactory,
    ChildDirectory,
    ChildHandle,
    ChildSpec,
    EscalationError,
    GetChild,
    GetChildren,
    RestartPolicy,
    StopChildren,
    Supervisor,
    UnknownChildError,
)

__all__ = [
    "DEFAULT_RESTART_POLICY",
    "LOOP_VARIABLE",
    "THREAD_PREFIX",
    "Actor",
    "ActorContext",
    "ActorFactory",
    "ActorService",
    "ActorSystem",
    "ActorTimeoutError",
    "BorrowedLoop",
    "ChildDirectory",
    "ChildExited",
    "ChildHandle",
    "ChildSpec",
    "DeadLetter",
    "DeadLetters",
    "EscalationError",
    "GetChild",
    "GetChildren",
    "LoopActor",
    "LoopClosedError",
    "ReplyFuture",
    "RestartPolicy",
    "StartStop",
    "StopChildren",
    "Supervisor",
    "UnknownChildError",
    "ask",
    "await_future",
    "await_stopped",
    "call",
    "loop_kind",
    "new_event_loop",
    "run_main",
    "stop_actor",
    "tell",
    "threads",
    "wait_started",
    "wait_stopped",
]
