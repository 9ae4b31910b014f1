"""WindowedConnection: the part of ``Connection`` that a ``PublishWindow`` answers, alike for ZeroMQ and NATS."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sized
from typing import Generic, TypeVar

from .connection import Connection, ConnectionClosedError, Strategy, check_message, check_open
from .window import PublishWindow

__all__ = ["WindowedConnection"]

P = TypeVar("P", bound=Sized)


class WindowedConnection(Connection, Generic[P]):
    """A connection whose publishes wait in a ``PublishWindow`` until the broker accepts them.

    A subclass keeps its window in ``_publishes`` and its state (``new``, ``open``, ``closing``,
    ``closed``) in ``_state``, makes ``publish_nowait`` add to the window, and says how large a body may
    be (``_check_size``) and who accepts publishes (``_acceptor``, for error messages).
    """

    _state: str
    _publishes: PublishWindow[P]
    _acceptor = "the broker"

    async def publish(self, topic: str, body: bytes, strategy: Strategy) -> None:
        self._check_open("publish")
        check_message(topic, strategy)
        self._check_size(topic, body)
        await self.wait_writable()
        await self.publish_nowait(topic, body, strategy)

    @property
    def max_in_flight(self) -> int:
        """How many publishes may await the broker's acceptance at once."""
        return self._publishes.size

    @property
    def writable(self) -> bool:
        return self._state == "open" and self._publishes.has_room

    async def wait_writable(self) -> None:
        self._check_open("publish")
        await self._publishes.wait_room(lambda: self._check_open("publish"))

    def _check_open(self, what: str) -> None:
        check_open(self, self._state, what)

    def _closed_error(self, topic: str) -> ConnectionClosedError:
        """What fails a publish to ``topic`` the connection closed on (``""``: a waiter, not a publish)."""
        if not topic:
            return ConnectionClosedError(f"{self!r} closed; make a new connection")
        return ConnectionClosedError(
            f"{self!r} closed before {self._acceptor} accepted the message to {topic!r}; publish it again on an "
            "open connection"
        )

    @abstractmethod
    def _check_size(self, topic: str, body: bytes) -> None:
        """Raise ``FrameEncodeError`` when ``body`` is larger than this connection may publish."""
