"""The root exception shared by every Minos package."""

from __future__ import annotations

__all__ = ["MinosException"]


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
