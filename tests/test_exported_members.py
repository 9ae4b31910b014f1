"""The public surface: every seed name that has landed is exported, and ``__all__`` is sorted."""

from importlib import import_module

import minos.networks
from minos.networks import (
    actors,
    brokers,
    http,
    periodic,
    protocol,
    testing,
    transports,
)

# `minos.networks.enroute` the attribute is the seed's decorator namespace, which shadows the subpackage
# of the same name; the subpackage is still importable by its dotted name.
enroute_package = import_module("minos.networks.enroute")

# The names of ../shared/spec/seed-api.txt, grouped by the issue that delivers them. A group is added here
# when its issue lands, so this list always says which part of the seed is really there.
SEED_NAMES_LANDED = {
    "foundation": [
        "BrokerMessage",
        "BrokerMessageV1",
        "BrokerMessageV1Payload",
        "BrokerMessageV1Status",
        "BrokerMessageV1Strategy",
        "EnrouteDecoratorKind",
        "InMemoryRequest",
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
        "REQUEST_HEADERS_CONTEXT_VAR",
        "REQUEST_REPLY_TOPIC_CONTEXT_VAR",
        "REQUEST_USER_CONTEXT_VAR",
        "Request",
        "RequestException",
        "Response",
        "ResponseException",
        "WrappedRequest",
    ],
    "enroute": [
        "BrokerCommandEnrouteDecorator",
        "BrokerDispatcher",
        "BrokerEnroute",
        "BrokerEnrouteDecorator",
        "BrokerEventEnrouteDecorator",
        "BrokerQueryEnrouteDecorator",
        "BrokerRequest",
        "BrokerResponse",
        "BrokerResponseException",
        "BrokerRouter",
        "CheckDecorator",
        "Checker",
        "CheckerMeta",
        "CheckerWrapper",
        "CronTab",
        "Enroute",
        "EnrouteCollector",
        "EnrouteDecorator",
        "EnrouteFactory",
        "Handler",
        "HandlerMeta",
        "HandlerWrapper",
        "HttpEnrouteDecorator",
        "HttpRouter",
        "PeriodicEnroute",
        "PeriodicEnrouteDecorator",
        "PeriodicEventEnrouteDecorator",
        "PeriodicRouter",
        "RestCommandEnrouteDecorator",
        "RestEnroute",
        "RestEnrouteDecorator",
        "RestHttpRouter",
        "RestQueryEnrouteDecorator",
        "Router",
        "enroute",
    ],
    "broker": [
        "BrokerClient",
        "BrokerClientPool",
        "BrokerHandler",
        "BrokerPublisher",
        "BrokerSubscriber",
        "InMemoryBrokerPublisher",
        "InMemoryBrokerSubscriber",
    ],
    "periodic, discovery, specs, system": [
        "AsyncAPIService",
        "DiscoveryClient",
        "DiscoveryConnector",
        "InMemoryDiscoveryClient",
        "OpenAPIService",
        "PeriodicPort",
        "PeriodicTask",
        "PeriodicTaskScheduler",
        "ScheduledRequest",
        "ScheduledRequestContent",
        "ScheduledResponseException",
        "SystemService",
        "consume_queue",
        "get_host_ip",
        "get_host_name",
        "get_ip",
    ],
    "http": [
        "HttpConnector",
        "HttpPort",
        "HttpRequest",
        "HttpResponse",
        "HttpResponseException",
    ],
}


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: SCREAMING_CASE constants, then CamelCase classes, then everything else.
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_every_landed_seed_name_is_exported_from_the_top_level():
    missing = [
        name for names in SEED_NAMES_LANDED.values() for name in names if name not in minos.networks.__all__
    ]
    assert missing == []


def test_every_name_in_all_exists_and_all_is_sorted():
    for module in (
        minos.networks,
        actors,
        brokers,
        enroute_package,
        http,
        periodic,
        protocol,
        testing,
        transports,
    ):
        assert all(hasattr(module, name) for name in module.__all__), module.__name__
        assert module.__all__ == sorted(module.__all__, key=_isort_key), module.__name__
        assert len(set(module.__all__)) == len(module.__all__), module.__name__


def test_minos_common_offers_config_and_the_root_exception():
    from minos.common import Config, MinosException

    assert issubclass(minos.networks.MinosNetworkException, MinosException)
    assert callable(Config)
