"""Request and Response, the values every handler takes and returns, and the request context variables."""

from __future__ import annotations

import inspect
import warnings
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from functools import lru_cache
from typing import Any
from uuid import UUID

from ..exceptions import NotHasContentException, NotHasParamsException, RequestException

__all__ = [
    "REQUEST_HEADERS_CONTEXT_VAR",
    "REQUEST_REPLY_TOPIC_CONTEXT_VAR",
    "REQUEST_USER_CONTEXT_VAR",
    "InMemoryRequest",
    "Request",
    "Response",
    "WrappedRequest",
    "parse_user_header",
]

REQUEST_USER_CONTEXT_VAR: ContextVar[UUID | None] = ContextVar("user", default=None)
"""The user of the request being handled; set by the dispatcher from the ``user`` header."""

REQUEST_HEADERS_CONTEXT_VAR: ContextVar[dict[str, str] | None] = ContextVar("headers", default=None)
"""The headers of the request being handled; a handler may add to them and they travel back in the reply."""

REQUEST_REPLY_TOPIC_CONTEXT_VAR: ContextVar[str | None] = ContextVar("reply_topic", default=None)
"""The reply topic to use for requests sent while a ``BrokerClientPool`` client is acquired."""


# The same few users send most requests: parsing each UUID once costs memory bounded by the cache size.
_parse_uuid = lru_cache(maxsize=4096)(UUID)


def parse_user_header(value: str | None) -> UUID | None:
    """The user a ``user`` header names, for broker messages and HTTP requests alike.

    Raises:
        RequestException: The header is not a UUID; the message says what was received.
    """
    if value is None:
        return None
    try:
        return _parse_uuid(value)
    except ValueError:
        raise RequestException(
            f"the 'user' header must be a UUID such as '{UUID(int=0)}', got {value!r}; fix the sender"
        ) from None


class Request(ABC):
    """What a handler receives, whatever transport brought it."""

    @property
    @abstractmethod
    def user(self) -> UUID | None:
        """The UUID of the user who made the request, if known."""

    @property
    def has_content(self) -> bool:
        """Whether ``content()`` has something to return."""
        return True

    async def content(self, **kwargs: Any) -> Any:
        """The request's content.

        Raises:
            NotHasContentException: when the request carries no content.
        """
        if not self.has_content:
            raise NotHasContentException(f"{self!r} has no content; check `has_content` before asking for it")
        return await self._content(**kwargs)

    async def _content(self, **kwargs: Any) -> Any:
        raise NotHasContentException(f"{type(self).__name__} does not carry content")

    @property
    def has_params(self) -> bool:
        """Whether ``params()`` has something to return."""
        return False

    async def params(self, **kwargs: Any) -> dict[str, Any]:
        """The request's parameters (for HTTP, the path parameters).

        Raises:
            NotHasParamsException: when the request carries no parameters.
        """
        if not self.has_params:
            raise NotHasParamsException(f"{self!r} has no params; check `has_params` before asking for them")
        return await self._params(**kwargs)

    async def _params(self, **kwargs: Any) -> dict[str, Any]:
        raise NotHasParamsException(f"{type(self).__name__} does not carry params")


class InMemoryRequest(Request):
    """A request built in code, for tests and for calling handlers directly.

    As in minos 0.7, a request built while ``REQUEST_USER_CONTEXT_VAR`` is set (inside a handler, or in a
    test that sets it) takes its user from there; a ``user`` given as well is then ignored, with a
    ``RuntimeWarning``.

    Args:
        content: The content; ``has_content`` is False when it is None.
        params: The parameters; ``has_params`` is False when they are None.
        user: The user making the request.
    """

    def __init__(
        self, content: Any = None, params: dict[str, Any] | None = None, user: UUID | None = None
    ) -> None:
        context_user = REQUEST_USER_CONTEXT_VAR.get()
        if context_user is not None:
            if user is not None and user != context_user:
                warnings.warn(
                    f"InMemoryRequest's user {user} is ignored in favour of REQUEST_USER_CONTEXT_VAR's "
                    f"{context_user}, as in minos 0.7; reset the context variable to choose the user here",
                    RuntimeWarning,
                    stacklevel=2,
                )
            user = context_user
        self._content_value = content
        self._params_value = params
        self._user = user

    @property
    def user(self) -> UUID | None:
        return self._user

    @property
    def has_content(self) -> bool:
        return self._content_value is not None

    async def _content(self, **kwargs: Any) -> Any:
        return self._content_value

    @property
    def has_params(self) -> bool:
        return self._params_value is not None

    async def _params(self, **kwargs: Any) -> dict[str, Any]:
        assert self._params_value is not None
        return self._params_value

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, InMemoryRequest)
            and self._content_value == other._content_value
            and self._params_value == other._params_value
            and self._user == other._user
        )

    __hash__ = None  # type: ignore[assignment]  # mutable content makes it unhashable

    def __repr__(self) -> str:  # minos 0.7's form: the three arguments, by position
        return f"InMemoryRequest({self._content_value!r}, {self._params_value!r}, {self._user!r})"


Action = Callable[[Any], Any | Awaitable[Any]]


class WrappedRequest(Request):
    """A request seen through functions that transform its content and parameters (sync or async).

    Args:
        base: The request to wrap.
        content_action: Applied to the base request's content; the content is passed through when None.
        params_action: Applied to the base request's parameters; passed through when None.
    """

    def __init__(
        self, base: Request, content_action: Action | None = None, params_action: Action | None = None
    ) -> None:
        self.base = base
        self.content_action = content_action
        self.params_action = params_action

    @property
    def user(self) -> UUID | None:
        return self.base.user

    @property
    def has_content(self) -> bool:
        return self.base.has_content

    async def _content(self, **kwargs: Any) -> Any:
        return await _apply(self.content_action, await self.base.content(**kwargs))

    @property
    def has_params(self) -> bool:
        return self.base.has_params

    async def _params(self, **kwargs: Any) -> dict[str, Any]:
        params: dict[str, Any] = await _apply(self.params_action, await self.base.params(**kwargs))
        return params

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, WrappedRequest)
            and self.base == other.base
            and self.content_action == other.content_action
            and self.params_action == other.params_action
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        # minos 0.7's form: the three constructor arguments, in order
        return f"WrappedRequest({self.base!r}, {self.content_action!r}, {self.params_action!r})"


async def _apply(action: Action | None, value: Any) -> Any:
    if action is None:
        return value
    result = action(value)
    if inspect.isawaitable(result):
        result = await result
    return result


class Response:
    """What a handler returns: content and a status code.

    Responses are values: equal when of the same class with equal content and status, and hashable (as
    in minos 0.7) by their content and status, or their status alone when the content is not hashable.

    Args:
        data: The content; ``has_content`` is False when it is None.
        status: Any int status code; it reaches the caller exactly (a 404 stays 404).

    Raises:
        ValueError: ``status`` is not an int (as in minos 0.7).
    """

    __slots__ = ("_data", "_status")

    def __init__(self, data: Any = None, status: int = 200) -> None:
        if isinstance(status, bool) or not isinstance(status, int):
            raise ValueError(f"a response status must be an int such as 200 or 404, got {status!r}")
        self._data = data
        self._status = status

    @property
    def status(self) -> int:
        """The status code."""
        return self._status

    @property
    def has_content(self) -> bool:
        """Whether the response carries content."""
        return self._data is not None

    async def content(self, **kwargs: Any) -> Any:
        """The response's content (None when it has none)."""
        return self._data

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        assert isinstance(other, Response)
        return (self._data, self._status) == (other._data, other._status)

    def __hash__(self) -> int:
        try:
            return hash((self._data, self._status))
        except TypeError:  # content such as a dict: equal responses still hash alike by their status
            return hash(self._status)

    def __repr__(self) -> str:
        if self._status == 200:  # minos 0.7's form
            return f"{type(self).__name__}({self._data!r})"
        return f"{type(self).__name__}({self._data!r}, status={self._status!r})"
