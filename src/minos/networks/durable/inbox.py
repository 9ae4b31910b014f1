"""The inbox: which messages a group has handled, with the handlers' effects committed in the same transaction.

A durable dispatcher marks each message in the inbox once its handler has finished, in one transaction
with the SQL statements the handler gave ``inbox_execute``, and only then replies and acknowledges. A
copy of a message already marked (a redelivery after a crash, or an outbox sending again) finds the
mark: its effects are rolled back, and it is answered and acknowledged as a duplicate. So:

- the handler's **transactional effects** (statements passed to ``inbox_execute``) commit exactly once
  per message and group, whatever crashes;
- the handler itself runs at least once: after a kill -9 between its end and the commit it runs again,
  so effects outside the inbox transaction (an HTTP call, a file) must be idempotent;
- marks are kept ``inbox_retention`` seconds (7 days by default); a copy arriving later is handled again.

Example::

    @enroute.broker.event("OrderCreated")
    async def count_order(self, request):
        order = await request.content()
        inbox_execute("INSERT INTO order_counts (id) VALUES (?)", (str(order["id"]),))  # SQLite: ?, PostgreSQL: $1
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar, Token
from typing import Any

from ..exceptions import MinosNetworkException
from ..protocol import BrokerMessageV1
from .store import Done, DurableStore, InboxMark

__all__ = ["Inbox", "NoInboxTransactionError", "inbox_execute"]

Effects = list[tuple[str, Sequence[Any]]]

_EFFECTS: ContextVar[Effects | None] = ContextVar("minos_inbox_effects", default=None)


class NoInboxTransactionError(MinosNetworkException, RuntimeError):
    """``inbox_execute`` was called outside a handler of a durable service."""


def inbox_execute(sql: str, params: Sequence[Any] = ()) -> None:
    """Run ``sql`` in the transaction that marks the message being handled, when the handler has finished.

    The statement commits together with the inbox mark, exactly once per message: a copy of the message
    handled again after a crash does not apply it twice. It runs on the store's own connection after the
    handler returned (so the handler cannot read what it writes here), only if the handler succeeded
    (a 2xx or 3xx answer); a failed statement rolls the whole message back and counts as a failed attempt.

    Args:
        sql: A statement in the store's dialect (SQLite ``?`` or PostgreSQL ``$1`` placeholders).
        params: Its parameters.

    Raises:
        NoInboxTransactionError: outside a broker handler of a service with ``interfaces.broker.durable``.
    """
    effects = _EFFECTS.get()
    if effects is None:
        raise NoInboxTransactionError(
            "inbox_execute() works only inside a broker handler of a durable service: configure "
            "interfaces.broker.durable (a SQLite path or a PostgreSQL dsn) for this service"
        )
    effects.append((sql, tuple(params)))


class Inbox:
    """A group's inbox in a durable store.

    Args:
        store: Where the marks are kept (shared by the group's members: one SQLite file, or PostgreSQL).
        group: Whose marks these are.
    """

    def __init__(self, store: DurableStore, group: str) -> None:
        self.store = store
        self.group = group

    def __repr__(self) -> str:
        return f"<Inbox {self.group!r} in {self.store!r}>"

    @staticmethod
    def collect() -> tuple[Effects, Token[Effects | None]]:
        """Start collecting the effects of the handler about to run in this context."""
        effects: Effects = []
        return effects, _EFFECTS.set(effects)

    @staticmethod
    def stop_collecting(token: Token[Effects | None]) -> None:
        """Stop collecting (``collect``'s token)."""
        _EFFECTS.reset(token)

    def mark(self, message: BrokerMessageV1, effects: Effects, done: Done) -> None:
        """Mark ``message`` handled with ``effects``; ``done`` hears True (new), False (duplicate) or the error.

        Raises:
            StoreClosedError: when the store is not open.
        """
        self.store.submit(InboxMark(self.group, message.topic, message.identifier, effects), done)
