"""The root exception shared by every Minos package, the configuration's error, and a 0.7 key's that cannot be used."""

from __future__ import annotations

__all__ = ["ConfigError", "LayoutError", "MinosException"]


class MinosException(Exception):
    """Base class of every error raised by Minos code.

    Args:
        message: A sentence that says what happened and what to do about it.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(message={self.message!r})"

    def __str__(self) -> str:
        return self.message


class ConfigError(MinosException, ValueError):
    """The configuration is unreadable, malformed, or lacks a value the service needs.

    Args:
        message: What is wrong, where, and what to do about it.
        key: The dotted key at fault, when there is one.
        source: The file path or ``"<dict>"`` the configuration came from, when known.
    """

    def __init__(self, message: str = "", *, key: str | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.source = source


class LayoutError(ValueError):
    """A 0.7 key holds what minos.networks cannot use; ``Config`` turns it into a ``ConfigError``.

    Internal to reading a file: it never reaches a caller, so it stays out of the ``MinosException`` tree.

    Args:
        message: What is wrong and what to write instead.
        key: The dotted key at fault, as the file spells it.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key
