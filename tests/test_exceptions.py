"""The exception tree drawn in ``minos.networks.exceptions``."""

import pytest

from minos.common import MinosException
from minos.networks import exceptions as e
from minos.networks.actors import ActorTimeoutError, EscalationError, LoopClosedError, UnknownChildError
from minos.networks.transports import (
    BrokerBindError,
    BrokerFullError,
    BrokerUnavailableError,
    ConnectionClosedError,
)


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (e.MinosNetworkException, MinosException),
        (e.MinosDiscoveryConnectorException, e.MinosNetworkException),
        (e.MinosInvalidDiscoveryClient, e.MinosNetworkException),
        (e.MinosHandlerException, e.MinosNetworkException),
        (e.MinosActionNotFoundException, e.MinosHandlerException),
        (e.MinosHandlerNotFoundEnoughEntriesException, e.MinosHandlerException),
        (e.NotSatisfiedCheckerException, e.MinosHandlerException),
        (e.MinosEnrouteDecoratorException, e.MinosNetworkException),
        (e.MinosMultipleEnrouteDecoratorKindsException, e.MinosEnrouteDecoratorException),
        (e.MinosRedefinedEnrouteDecoratorException, e.MinosEnrouteDecoratorException),
        (e.RequestException, e.MinosNetworkException),
        (e.NotHasContentException, e.RequestException),
        (e.NotHasParamsException, e.RequestException),
        (e.FrameDecodeError, e.MinosNetworkException),
        (e.FrameDecodeError, ValueError),
        (e.FrameEncodeError, e.MinosNetworkException),
        (e.FrameEncodeError, TypeError),
        (e.ResponseException, MinosException),
        (ActorTimeoutError, TimeoutError),
        (LoopClosedError, e.MinosNetworkException),
        (EscalationError, e.MinosNetworkException),
        (UnknownChildError, LookupError),
        (BrokerFullError, e.MinosNetworkException),
        (BrokerUnavailableError, ConnectionError),
        (ConnectionClosedError, ConnectionError),
        (BrokerBindError, OSError),
    ],
)
def test_each_exception_sits_where_the_tree_draws_it(child, parent):
    assert issubclass(child, parent)
    assert child.__name__ in e.__doc__


def test_a_response_exception_carries_its_message_and_exact_status():
    error = e.ResponseException("order not found", status=404)
    assert error.status == 404
    assert str(error) == "order not found"
    assert repr(error) == "ResponseException(message='order not found', status=404)"
    assert e.ResponseException().status == 400


def test_a_response_exception_accepts_the_seeds_positional_status():
    error = e.ResponseException(status=409)
    assert error.status == 409
    assert not issubclass(e.ResponseException, e.MinosNetworkException)
