"""The root exception shared by every Minos package, and the error of a minos 0.7 key that cannot be used."""

from __future__ import annotations

__all__ = ["LayoutError", "MinosException"]


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
