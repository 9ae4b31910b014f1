"""Log records that carry the message they are about: its identifier, its topic and the service, as text or JSON.

While a broker handler runs, ``enroute.HANDLING_CONTEXT_VAR`` holds its message, so whatever is logged
from inside the handler (by the user's code too) gets ``message_id`` and ``topic`` without a single
extra argument; log lines about a message outside its handler pass them with
``extra=message_log_fields(message)``. :class:`MessageContextFilter` fills the fields in, and
:class:`JsonFormatter` writes one JSON object per line. Nothing here logs per message: the handler path
logs only what goes wrong.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Final

from minos.common import Config, ConfigError, KnownKeys

from ..enroute import HANDLING_CONTEXT_VAR

__all__ = [
    "LOGGING_KEYS",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "JsonFormatter",
    "MessageContextFilter",
    "TextFormatter",
    "configure_logging",
    "log_settings",
]

LOG_FORMATS: Final = ("text", "json")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOGGING_KEYS: Final[KnownKeys] = {"level": None, "format": None}
"""The keys of ``logging`` :func:`log_settings` reads; any other is an error."""
CONTEXT_FIELDS: Final = ("service", "message_id", "topic")
"""The fields :class:`MessageContextFilter` sets on every record (None when they do not apply)."""

_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class MessageContextFilter(logging.Filter):
    """Adds ``service``, ``message_id`` and ``topic`` to every record passing through.

    A field given with ``extra=`` wins; else ``message_id`` and ``topic`` come from the message whose
    handler runs in the record's context, and ``service`` from this filter.

    Args:
        service: The service's name (or ``broker`` for the broker process); None leaves it out.
    """

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if fields.get("service") is None:
            record.service = self.service
        if fields.get("message_id") is None or fields.get("topic") is None:
            message = HANDLING_CONTEXT_VAR.get()
            if fields.get("message_id") is None:
                record.message_id = str(message.identifier) if message is not None else None
            if fields.get("topic") is None:
                record.topic = message.topic if message is not None else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record and line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``service``, ``message_id``, ``topic``, ``thread``, then any other ``extra=`` field, and ``exception``
    (the formatted traceback) when there is one. Values JSON cannot carry are written with ``str``.
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            data[field] = getattr(record, field, None)
        data["thread"] = record.threadName
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in data:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE``, then ``[topic=... message_id=...]`` for a record about a message."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        message_id = getattr(record, "message_id", None)
        if message_id is None:
            return text
        return f"{text} [topic={getattr(record, 'topic', None)} message_id={message_id}]"


def log_settings(config: Config) -> tuple[str, str]:
    """The ``logging`` section: ``level`` (WARNING by default) and ``format`` (``text`` or ``json``).

    Returns:
        The level, upper-cased, and the format.

    Raises:
        ConfigError: A key is unknown, has the wrong type or an unknown value; the message names it.
    """
    config.check_keys("logging", LOGGING_KEYS)
    level = config.get_str("logging.level", "WARNING")
    log_format = config.get_str("logging.format", "text")
    for key, value, known in (("level", level.upper(), LOG_LEVELS), ("format", log_format, LOG_FORMATS)):
        if value not in known:
            raise ConfigError(
                f"Config key 'logging.{key}' in {config.source} must be one of {', '.join(known)}, got {value!r}",
                key=f"logging.{key}",
                source=config.source,
            )
    return level.upper(), log_format


def configure_logging(
    level: str = "WARNING",
    log_format: str = "text",
    *,
    service: str | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send the process's logs to ``stream`` (stderr) as ``log_format``, replacing the root's handlers.

    Args:
        level: The root logger's level, a name from ``LOG_LEVELS`` (any case).
        log_format: ``text`` or ``json`` (``LOG_FORMATS``).
        service: Put in every record as ``service``.
        stream: Where to write; stderr by default.

    Returns:
        The handler installed on the root logger.

    Raises:
        ValueError: An unknown level or format; the message lists the known ones.
    """
    if level.upper() not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(MessageContextFilter(service))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
