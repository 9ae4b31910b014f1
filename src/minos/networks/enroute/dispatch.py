"""Broker dispatch: a message's topic picks a handler, run with the request context, and a reply comes out."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from minos.common import ConfigSource, as_config

from ..exceptions import (
    MinosActionNotFoundException,
    MinosRedefinedEnrouteDecoratorException,
    NotSatisfiedCheckerException,
    RequestException,
    ResponseException,
)
from ..protocol.messages import BrokerMessage, BrokerMessageV1Payload, BrokerMessageV1Status
from ..protocol.requests import (
    REQUEST_HEADERS_CONTEXT_VAR,
    REQUEST_USER_CONTEXT_VAR,
    Request,
    Response,
    parse_user_header,
)
from .decorators import BrokerEnrouteDecorator, EnrouteDecorator
from .handlers import Action
from .routers import BrokerRouter

__all__ = [
    "HANDLING_CONTEXT_VAR",
    "BrokerDispatcher",
    "BrokerRequest",
    "BrokerResponse",
    "BrokerResponseException",
    "message_log_fields",
]

logger = logging.getLogger(__name__)

HANDLING_CONTEXT_VAR: ContextVar[BrokerMessage | None] = ContextVar("handling", default=None)
"""The message whose handler is running; ``system.logs`` puts its identifier and topic in every log record."""


def message_log_fields(message: BrokerMessage) -> dict[str, str]:
    """The ``extra=`` of a log record about ``message``: its identifier and topic (see ``system.logs``)."""
    return {"message_id": str(message.identifier), "topic": message.topic}


_SUCCESS = BrokerMessageV1Status.SUCCESS
_ERROR = BrokerMessageV1Status.ERROR
_SYSTEM_ERROR = BrokerMessageV1Status.SYSTEM_ERROR


class BrokerRequest(Request):
    """The request a broker handler receives: the message's content, user and headers.

    ``headers`` is a copy of the message's, so a handler may change it (directly or through
    ``REQUEST_HEADERS_CONTEXT_VAR``) without touching the message; the reply carries the changes.

    Args:
        raw: The message received.

    Raises:
        RequestException: The ``user`` header is not a UUID.
    """

    __slots__ = ("_user", "headers", "raw")

    def __init__(self, raw: BrokerMessage) -> None:
        self.raw = raw
        self.headers: dict[str, str] = dict(raw.payload.headers)
        self._user: UUID | None = parse_user_header(self.headers.get("user"))

    @property
    def user(self) -> UUID | None:
        """The user named by the message's ``user`` header, if any."""
        return self._user

    @property
    def reply_topic(self) -> str | None:
        """Where the sender expects the reply, if anywhere."""
        return self.raw.reply_topic

    @property
    def has_content(self) -> bool:
        """Whether the message carries content (anything but None)."""
        return self.raw.payload.content is not None

    async def _content(self, **kwargs: Any) -> Any:
        return self.raw.payload.content

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BrokerRequest) and self.raw == other.raw

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BrokerRequest({self.raw!r})"


class BrokerResponse(Response):
    """What a broker handler returns: content and any int status, which reaches the caller exactly."""

    __slots__ = ()


class BrokerResponseException(ResponseException):
    """Raised by a broker handler to reply with an error status (400 by default) and a message."""


class BrokerDispatcher:
    """Runs the handler of a message's topic and turns the outcome into a reply payload.

    ``dispatch`` never raises for a handler's problem; every outcome is a payload:

    ============================================  =========================================================
    outcome                                       reply (status, content)
    ============================================  =========================================================
    handler returns a ``Response``                its status exactly, its content
    handler returns anything else                 200, None
    handler raises ``ResponseException``          its status exactly, its message
    a checker is not satisfied                    400, the message naming the checker
    ``user`` header is not a UUID                 400, a message saying so
    no handler for the topic                      400, a message naming the topic and the known topics
    handler raises anything else                  500, "Internal error in handler ... : <type>"; the
                                                  traceback is logged, never sent
    ============================================  =========================================================

    The reply's headers are the request's, as the handler left them in ``REQUEST_HEADERS_CONTEXT_VAR``.
    Whether to send the reply (only when the message has a ``reply_topic``) is the caller's decision.

    Args:
        actions: The handler of each topic: async (or sync) callables taking a ``BrokerRequest``.
    """

    def __init__(self, actions: Mapping[str, Callable[[Request], Any]]) -> None:
        self._actions: dict[str, tuple[Action, str]] = {
            topic: (_as_action(action), _name(action)) for topic, action in actions.items()
        }
        self._topics = sorted(self._actions)

    @classmethod
    def from_routes(cls, routes: Mapping[EnrouteDecorator, Callable[[Request], Any]]) -> BrokerDispatcher:
        """Builds the dispatcher of broker routes, such as ``BrokerRouter(...).routes``.

        Raises:
            TypeError: A route is not a broker route.
            MinosRedefinedEnrouteDecoratorException: Two routes share a topic.
        """
        actions: dict[str, Callable[[Request], Any]] = {}
        for decorator, action in routes.items():
            if not isinstance(decorator, BrokerEnrouteDecorator):
                raise TypeError(f"a broker dispatcher takes broker routes only, got {decorator!r}")
            if decorator.topic in actions:
                raise MinosRedefinedEnrouteDecoratorException(
                    f"topic {decorator.topic!r} has two routes; a BrokerRouter combines them, so build the "
                    "routes with one"
                )
            actions[decorator.topic] = action
        return cls(actions)

    @classmethod
    def from_config(cls, config: ConfigSource) -> BrokerDispatcher:
        """Builds the dispatcher of the broker routes of the services listed in ``config``."""
        config = as_config(config)
        return cls.from_routes(BrokerRouter.from_config(config).routes)

    @property
    def topics(self) -> list[str]:
        """The topics with a handler, sorted."""
        return list(self._topics)

    @property
    def actions(self) -> dict[str, Action]:
        """The handler of each topic."""
        return {topic: action for topic, (action, _) in self._actions.items()}

    def get_action(self, topic: str) -> Action:
        """Returns the handler of ``topic``.

        Raises:
            MinosActionNotFoundException: No handler has that topic; the message lists the known topics.
        """
        try:
            return self._actions[topic][0]
        except KeyError:
            raise MinosActionNotFoundException(self._not_found(topic)) from None

    async def dispatch(self, message: BrokerMessage) -> BrokerMessageV1Payload:
        """Runs the handler of the message's topic and returns the reply payload.

        The user and headers context variables hold the request's values during the call and are restored
        afterwards, whatever the handler did.

        Args:
            message: The message received.

        Returns:
            The reply payload: content, status and headers, as the class docstring tabulates.
        """
        entry = self._actions.get(message.topic)
        if entry is None:
            return BrokerMessageV1Payload(self._not_found(message.topic), dict(message.headers), _ERROR)
        action, name = entry
        try:
            request = BrokerRequest(message)
        except RequestException as exc:
            return BrokerMessageV1Payload(exc.message, dict(message.headers), _ERROR)

        user_token = REQUEST_USER_CONTEXT_VAR.set(request.user)
        headers_token = REQUEST_HEADERS_CONTEXT_VAR.set(request.headers)
        handling_token = HANDLING_CONTEXT_VAR.set(message)
        try:
            response = await action(request)
            if isinstance(response, Response):
                content, status = await response.content(), response.status
            else:
                content, status = None, _SUCCESS
        except ResponseException as exc:
            content, status = exc.message, exc.status
        except NotSatisfiedCheckerException as exc:
            content, status = exc.message, _ERROR
        except Exception as exc:
            logger.exception("handler %s failed while handling topic %r", name, message.topic)
            content, status = _internal_error(name, message.topic, exc), _SYSTEM_ERROR
        finally:
            headers = REQUEST_HEADERS_CONTEXT_VAR.get()
            HANDLING_CONTEXT_VAR.reset(handling_token)
            REQUEST_HEADERS_CONTEXT_VAR.reset(headers_token)
            REQUEST_USER_CONTEXT_VAR.reset(user_token)
        try:
            return BrokerMessageV1Payload(content, headers, status)
        except TypeError as exc:
            logger.error("handler %s returned an invalid reply for topic %r: %s", name, message.topic, exc)
            return BrokerMessageV1Payload(
                f"Internal error in handler {name!r} while handling {message.topic!r}: invalid reply ({exc})",
                dict(message.headers),
                _SYSTEM_ERROR,
            )

    def _not_found(self, topic: str) -> str:
        return (
            f"no handler for topic {topic!r}; the known topics are {self._topics!r}. Decorate a handler with "
            f"@enroute.broker.command({topic!r}) (or query, event) and list its service in the config"
        )

    def __repr__(self) -> str:
        return f"BrokerDispatcher(topics={self._topics!r})"


def _internal_error(name: str, topic: str, exc: Exception) -> str:
    # The exception's own text may carry internals (paths, SQL, secrets): only its type goes out.
    return f"Internal error in handler {name!r} while handling {topic!r}: {type(exc).__name__}"


def _name(action: Callable[..., Any]) -> str:
    module = getattr(action, "__module__", None)
    qualname = getattr(action, "__qualname__", None) or repr(action)
    return f"{module}.{qualname}" if module else qualname


def _as_action(action: Callable[[Request], Any]) -> Action:
    if inspect.iscoroutinefunction(action):
        return action
    if not callable(action):
        raise TypeError(f"the action of a topic must be callable, got {action!r}")

    async def call(request: Request) -> Response | None:
        result = action(request)
        if inspect.isawaitable(result):
            result = await result
        response: Response | None = result
        return response

    return call
