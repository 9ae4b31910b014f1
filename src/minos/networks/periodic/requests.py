"""What a periodic handler receives, ScheduledRequest, and what it raises to report a failed run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ..exceptions import ResponseException
from ..protocol.requests import Request

__all__ = ["ScheduledRequest", "ScheduledRequestContent", "ScheduledResponseException"]


@dataclass(frozen=True, slots=True)
class ScheduledRequestContent:
    """The content of a scheduled request.

    Attributes:
        scheduled_at: When the run was due: the firing of the schedule, not the moment it started.
    """

    scheduled_at: datetime


class ScheduledRequest(Request):
    """The request a periodic handler receives at each firing of its schedule.

    It has no user and no parameters; its content is a :class:`ScheduledRequestContent`.

    Args:
        scheduled_at: When the run was due.
    """

    __slots__ = ("_scheduled_at",)

    def __init__(self, scheduled_at: datetime) -> None:
        self._scheduled_at = scheduled_at

    @property
    def user(self) -> UUID | None:
        """Always None: nobody sent a scheduled request."""
        return None

    @property
    def scheduled_at(self) -> datetime:
        """When the run was due."""
        return self._scheduled_at

    @property
    def has_content(self) -> bool:
        """Always True: the content says when the run was due."""
        return True

    async def _content(self, **kwargs: Any) -> ScheduledRequestContent:
        return ScheduledRequestContent(self._scheduled_at)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScheduledRequest) and self._scheduled_at == other._scheduled_at

    def __hash__(self) -> int:
        return hash((ScheduledRequest, self._scheduled_at))

    def __repr__(self) -> str:
        return f"ScheduledRequest({self._scheduled_at!r})"


class ScheduledResponseException(ResponseException):
    """Raised by a periodic handler to end its run as failed, with a message and a status (400 by default).

    The run is logged as failed, without a traceback, and counted in the task's failures; the schedule
    goes on.
    """
