"""Every error minos.networks raises, in one tree; each is importable from ``minos.networks``.

::

    MinosException                                  (minos.common)
    +-- ConfigError                                 (also a ValueError; minos.common)
    +-- MinosNetworkException
    |   +-- MinosDiscoveryConnectorException
    |   |   +-- DiscoveryUnavailableError           (also a ConnectionError; in discovery.clients)
    |   +-- MinosInvalidDiscoveryClient
    |   +-- MinosHandlerException
    |   |   +-- MinosActionNotFoundException
    |   |   +-- MinosHandlerNotFoundEnoughEntriesException
    |   |   +-- NotSatisfiedCheckerException
    |   +-- MinosEnrouteDecoratorException
    |   |   +-- MinosMultipleEnrouteDecoratorKindsException
    |   |   +-- MinosRedefinedEnrouteDecoratorException
    |   +-- RequestException
    |   |   +-- NotHasContentException
    |   |   +-- NotHasParamsException
    |   +-- FrameDecodeError                        (also a ValueError)
    |   +-- FrameEncodeError                        (also a TypeError)
    |   +-- ActorTimeoutError                       (also a TimeoutError; in actors.bridge)
    |   +-- LoopClosedError                         (also a RuntimeError; in actors.loop)
    |   +-- EscalationError                         (also a RuntimeError; in actors.supervisor)
    |   +-- UnknownChildError                       (also a LookupError; in actors.supervisor)
    |   +-- BrokerFullError                         (in transports.connection)
    |   +-- BrokerUnavailableError                  (also a ConnectionError; in transports.connection)
    |   +-- ConnectionClosedError                   (also a ConnectionError; in transports.connection)
    |   +-- BrokerBindError                         (also an OSError; in transports.broker_binding)
    |   +-- KeyFileError                            (also a ValueError; in transports.security)
    |   +-- DeadLetterFormatError                   (also a ValueError; in brokers.dead_letter_queue)
    |   +-- NoInboxTransactionError                 (also a RuntimeError; in durable.inbox)
    |   +-- StoreError                              (in durable.store)
    |       +-- StoreClosedError
    |       +-- EffectError
    +-- ResponseException                           (carries an int status)
        +-- BrokerResponseException                 (in enroute.dispatch)
        +-- HttpResponseException                   (in http.requests)
        +-- ScheduledResponseException              (in periodic.requests)

The names of minos 0.7 stay as they were; errors new to this project end in ``Error``. The actor
runtime's, the transports' and the stores' errors live beside the code that raises them.
``tests/test_exceptions.py`` checks this drawing against the classes themselves.
"""

from __future__ import annotations

from minos.common import MinosException

__all__ = [
    "FrameDecodeError",
    "FrameEncodeError",
    "MinosActionNotFoundException",
    "MinosDiscoveryConnectorException",
    "MinosEnrouteDecoratorException",
    "MinosHandlerException",
    "MinosHandlerNotFoundEnoughEntriesException",
    "MinosInvalidDiscoveryClient",
    "MinosMultipleEnrouteDecoratorKindsException",
    "MinosNetworkException",
    "MinosRedefinedEnrouteDecoratorException",
    "NotHasContentException",
    "NotHasParamsException",
    "NotSatisfiedCheckerException",
    "RequestException",
    "ResponseException",
]


class MinosNetworkException(MinosException):
    """Base class of every error raised by minos.networks."""


class MinosDiscoveryConnectorException(MinosNetworkException):
    """The discovery connector could not register or unregister the service."""


class MinosInvalidDiscoveryClient(MinosNetworkException):
    """The configured discovery client is not a usable DiscoveryClient."""


class MinosHandlerException(MinosNetworkException):
    """A handler could not be found, run or completed."""


class MinosActionNotFoundException(MinosHandlerException):
    """No handler is registered for the message's topic."""


class MinosHandlerNotFoundEnoughEntriesException(MinosHandlerException):
    """Fewer messages than requested arrived before the timeout."""


class NotSatisfiedCheckerException(MinosHandlerException):
    """A checker attached to a handler was still unsatisfied after its last attempt."""


class MinosEnrouteDecoratorException(MinosNetworkException):
    """An ``@enroute`` decorator was used in a way that cannot work."""


class MinosMultipleEnrouteDecoratorKindsException(MinosEnrouteDecoratorException):
    """Decorators of different kinds (command, query, event) were stacked on one handler."""


class MinosRedefinedEnrouteDecoratorException(MinosEnrouteDecoratorException):
    """Two handlers claim the same command or query route."""


class RequestException(MinosNetworkException):
    """A request could not give what was asked of it."""


class NotHasContentException(RequestException):
    """The request carries no content."""


class NotHasParamsException(RequestException):
    """The request carries no parameters."""


class FrameDecodeError(MinosNetworkException, ValueError):
    """Bytes received from a peer are not a valid message frame."""


class FrameEncodeError(MinosNetworkException, TypeError):
    """A message cannot be encoded, for example because its content holds an unsupported type."""


class ResponseException(MinosException):
    """Raised by a handler to answer with an error status instead of a response.

    Args:
        message: What went wrong, in words fit for the caller.
        status: The status code the caller receives, kept exactly (400 by default).
    """

    def __init__(self, message: str = "", status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}(message={self.message!r}, status={self.status!r})"
