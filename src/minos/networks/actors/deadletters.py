"""Dead letters: messages that could not be delivered, counted and logged instead of silently dropped."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

__all__ = ["DeadLetter", "DeadLetters", "tell"]

logger = logging.getLogger(__name__)

_REPR_LIMIT = 200


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message that reached no one.

    Attributes:
        recipient: The actor it was meant for, as pykka prints a ref (class name and URN).
        message: ``repr`` of the message, cut to 200 characters; the message itself is not kept, so
            dead letters hold on to no memory.
        reason: Why it was not delivered.
        at: When, on the clock the :class:`DeadLetters` was given.
    """

    recipient: str
    message: str
    reason: str
    at: float


class DeadLetters:
    """A thread-safe counter of undelivered messages that keeps the last few and logs at a bounded rate.

    The first dead letter is logged at once; after that at most one warning per ``log_interval``
    seconds, saying how many more arrived since the previous warning, so a dead actor hammered
    by a fast producer does not flood the log. :meth:`flush_log` reports what is still unlogged.

    Args:
        keep: How many of the most recent dead letters :attr:`recent` keeps.
        log_interval: Seconds between two warnings at most.
        clock: Time source for the rate limit and :attr:`DeadLetter.at` (tests pass a fake one).
    """

    def __init__(
        self,
        *,
        keep: int = 16,
        log_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._recent: deque[DeadLetter] = deque(maxlen=keep)
        self._log_interval = log_interval
        self._clock = clock
        self._last_log: float | None = None
        self._unlogged = 0

    def __repr__(self) -> str:
        return f"<DeadLetters count={self.count}>"

    @property
    def count(self) -> int:
        """How many dead letters were recorded since this object was made."""
        with self._lock:
            return self._count

    @property
    def recent(self) -> tuple[DeadLetter, ...]:
        """The most recent dead letters, oldest first."""
        with self._lock:
            return tuple(self._recent)

    def record(self, recipient: str, message: object, reason: str) -> None:
        """Count one undelivered message, keep it among the recent ones and log it if the rate allows.

        Args:
            recipient: Who the message was for.
            message: The message; only its (shortened) ``repr`` is kept.
            reason: Why it was not delivered, in words for the log.
        """
        now = self._clock()
        letter = DeadLetter(recipient=recipient, message=short_repr(message), reason=reason, at=now)
        with self._lock:
            self._count += 1
            self._recent.append(letter)
            if self._last_log is not None and now - self._last_log < self._log_interval:
                self._unlogged += 1
                return
            self._last_log = now
            unlogged, self._unlogged = self._unlogged, 0
        more = f" ({unlogged} more dead letters since the last report)" if unlogged else ""
        logger.warning("dead letter to %s: %s: %s%s", recipient, reason, letter.message, more)

    def flush_log(self) -> None:
        """Log how many dead letters arrived since the last warning, if any (call it at shutdown)."""
        with self._lock:
            unlogged, self._unlogged = self._unlogged, 0
            total = self._count
            self._last_log = self._clock()
        if unlogged:
            logger.warning("%d more dead letters since the last report (%d in all)", unlogged, total)


def tell(ref: pykka.ActorRef[Any], message: object, *, dead_letters: DeadLetters) -> bool:
    """Send ``message`` to the actor without waiting; record a dead letter if the actor is dead.

    pykka raises :class:`pykka.ActorDeadError` on a tell to a stopped actor; this helper turns that
    into a counted, logged dead letter so a fire-and-forget message is never dropped unnoticed.

    A message that reaches the mailbox of an actor that stops before handling it is recorded by
    :class:`~minos.networks.actors.Actor` when it stops. pykka leaves one gap no caller can close:
    a message put in the mailbox in the instant between the actor's last look at it and its thread
    ending is lost without a trace.

    Args:
        ref: The recipient.
        message: Any object; messages are not copied, so send immutable ones.
        dead_letters: Where to record the message if it cannot be delivered.

    Returns:
        True if the message was put in the actor's mailbox, False if it became a dead letter.
    """
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        dead_letters.record(str(ref), message, "the recipient is not running")
        return False
    return True


def short_repr(message: object) -> str:
    """``repr(message)`` cut to 200 characters; never raises."""
    try:
        text = repr(message)
    except Exception as error:  # a broken __repr__ must not lose the dead letter
        text = f"<{type(message).__name__} whose repr failed: {error!r}>"
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."
