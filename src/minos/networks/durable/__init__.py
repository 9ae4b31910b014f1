"""Durable mode: an outbox on the publishing side and an inbox on the receiving side, in SQLite or PostgreSQL.

See ``outbox`` for what a durable ``send`` promises, ``inbox`` for what a durable handler promises,
``receipts`` for how the two sides talk, ``store`` for the database and its group commit, and
``sqlite`` and ``postgres`` for its two backends.
"""

from .config import DURABLE_KEYS, DurableSettings, durable_settings
from .inbox import Inbox, NoInboxTransactionError, inbox_execute
from .outbox import Outbox
from .postgres import PostgresStore
from .receipts import OUTBOX_HEADER, ReceiptSender, decode_receipt, receipt_topic
from .sqlite import SqliteStore
from .store import (
    DurableStore,
    EffectError,
    InboxMark,
    OutboxDelete,
    OutboxPut,
    OutboxRow,
    StoreClosedError,
    StoreError,
)

__all__ = [
    "DURABLE_KEYS",
    "OUTBOX_HEADER",
    "DurableSettings",
    "DurableStore",
    "EffectError",
    "Inbox",
    "InboxMark",
    "NoInboxTransactionError",
    "Outbox",
    "OutboxDelete",
    "OutboxPut",
    "OutboxRow",
    "PostgresStore",
    "ReceiptSender",
    "SqliteStore",
    "StoreClosedError",
    "StoreError",
    "decode_receipt",
    "durable_settings",
    "inbox_execute",
    "receipt_topic",
]
