"""Reading ``interfaces.broker.durable``: which store a service keeps its outbox and inbox in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minos.common import Config, ConfigError, KnownKeys

from .postgres import PostgresStore
from .sqlite import SqliteStore
from .store import DurableStore

__all__ = ["DURABLE_KEYS", "DurableSettings", "durable_settings"]

STORES = ("sqlite", "postgresql")

DURABLE_KEYS: KnownKeys = dict.fromkeys(
    (
        "store",
        "path",
        "dsn",
        "schema",
        "origin",
        "resend_after",
        "max_resend_interval",
        "max_pending",
        "inbox_retention",
    )
)
"""The keys :func:`durable_settings` reads; any other key of the section is an error."""


@dataclass(frozen=True, slots=True)
class DurableSettings:
    """The ``interfaces.broker.durable`` section, validated.

    Attributes:
        store: ``sqlite`` (the default: an embedded file) or ``postgresql``.
        path: The SQLite file (relative paths are taken from the configuration file's folder).
        dsn: The PostgreSQL connection string, e.g. ``postgresql://user@127.0.0.1:5432/db``.
        schema: The PostgreSQL schema holding the tables (created when missing).
        origin: Names this service's outboxes in the store; replicas sharing one database need
            distinct values (default: the service's name).
        resend_after: Seconds without a receipt before an outbox row is sent again.
        max_resend_interval: The longest wait between two copies of an unconfirmed row.
        max_pending: How many rows a publisher lets wait for their receipt before ``send`` waits.
        inbox_retention: Seconds an inbox mark is kept (a copy arriving later is handled again).
    """

    store: str
    path: Path | None
    dsn: str
    schema: str
    origin: str
    resend_after: float
    max_resend_interval: float
    max_pending: int
    inbox_retention: float

    def open_store(self, name: str) -> DurableStore:
        """A new (unopened) store as configured; ``name`` names its writer thread."""
        if self.store == "postgresql":
            return PostgresStore(
                self.dsn, schema=self.schema, name=name, inbox_retention=self.inbox_retention
            )
        assert self.path is not None
        return SqliteStore(self.path, name=name, inbox_retention=self.inbox_retention)


def durable_settings(config: Config, key: str = "interfaces.broker.durable") -> DurableSettings | None:
    """The durable settings under ``key``, or None when the section is absent (the service is not durable).

    Raises:
        ConfigError: A key is missing, unknown, has the wrong type or an impossible value; the message
            names it.
    """
    if not config.get_mapping(key, {}):
        return None
    config.check_keys(key, DURABLE_KEYS)
    store = config.get_str(f"{key}.store", "sqlite")
    if store not in STORES:
        raise ConfigError(
            f"Config key '{key}.store' in {config.source} must be one of {STORES!r}, got {store!r}",
            key=f"{key}.store",
            source=config.source,
        )
    path: Path | None = None
    dsn = ""
    if store == "sqlite":
        raw = config.get_str(f"{key}.path")  # required: names the key when missing
        if not raw:
            raise ConfigError(
                f"Config key '{key}.path' in {config.source} must name the SQLite file, e.g. "
                f"'var/{config.name}.sqlite'",
                key=f"{key}.path",
                source=config.source,
            )
        path = Path(raw)
        if not path.is_absolute() and config.path is not None:
            path = config.path.parent / path
    else:
        dsn = config.get_str(f"{key}.dsn")
        if not dsn.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                f"Config key '{key}.dsn' in {config.source} must be a postgresql:// URL, got {dsn!r}",
                key=f"{key}.dsn",
                source=config.source,
            )
    schema = config.get_str(f"{key}.schema", "public")
    if not schema.isidentifier():
        raise ConfigError(
            f"Config key '{key}.schema' in {config.source} must be a plain SQL identifier, got {schema!r}",
            key=f"{key}.schema",
            source=config.source,
        )
    settings = DurableSettings(
        store=store,
        path=path,
        dsn=dsn,
        schema=schema,
        origin=config.get_str(f"{key}.origin", config.name),
        resend_after=config.get_float(f"{key}.resend_after", 5.0),
        max_resend_interval=config.get_float(f"{key}.max_resend_interval", 60.0),
        max_pending=config.get_int(f"{key}.max_pending", 10_000),
        inbox_retention=config.get_float(f"{key}.inbox_retention", 7 * 24 * 3600.0),
    )
    for name in ("resend_after", "max_resend_interval", "max_pending", "inbox_retention"):
        if getattr(settings, name) <= 0:
            raise ConfigError(
                f"Config key '{key}.{name}' in {config.source} must be positive, got {getattr(settings, name)!r}",
                key=f"{key}.{name}",
                source=config.source,
            )
    if settings.max_resend_interval < settings.resend_after:
        raise ConfigError(
            f"Config key '{key}.max_resend_interval' in {config.source} must be at least resend_after "
            f"({settings.resend_after!r}), got {settings.max_resend_interval!r}",
            key=f"{key}.max_resend_interval",
            source=config.source,
        )
    if not settings.origin:
        raise ConfigError(
            f"Config key '{key}.origin' in {config.source} must not be empty",
            key=f"{key}.origin",
            source=config.source,
        )
    return settings
