"""Item 13 of issue 17: every public name of minos.networks 0.7 imports, or says what to use instead."""

import importlib

import pytest

import minos.networks

# The names minos.networks 0.7.0 exported (its minos/networks/__init__.py), in its order.
NAMES_07 = [
    "AsyncAPIService",
    "BrokerClient",
    "BrokerClientPool",
    "BrokerCommandEnrouteDecorator",
    "BrokerDispatcher",
    "BrokerEnrouteDecorator",
    "BrokerEventEnrouteDecorator",
    "BrokerHandler",
    "BrokerHandlerService",
    "BrokerMessage",
    "BrokerPort",
    "BrokerPublisher",
    "BrokerPublisherBuilder",
    "BrokerPublisherQueue",
    "BrokerPublisherQueueDatabaseOperationFactory",
    "BrokerQueryEnrouteDecorator",
    "BrokerQueue",
    "BrokerQueueDatabaseOperationFactory",
    "BrokerRequest",
    "BrokerResponse",
    "BrokerResponseException",
    "BrokerRouter",
    "BrokerSubscriber",
    "BrokerSubscriberBuilder",
    "BrokerSubscriberDuplicateValidator",
    "BrokerSubscriberDuplicateValidatorDatabaseOperationFactory",
    "BrokerSubscriberQueue",
    "BrokerSubscriberQueueBuilder",
    "BrokerSubscriberQueueDatabaseOperationFactory",
    "BrokerSubscriberValidator",
    "CheckDecorator",
    "Checker",
    "CheckerMeta",
    "CheckerWrapper",
    "CronTab",
    "DatabaseBrokerPublisherQueue",
    "DatabaseBrokerQueue",
    "DatabaseBrokerQueueBuilder",
    "DatabaseBrokerSubscriberDuplicateValidator",
    "DatabaseBrokerSubscriberDuplicateValidatorBuilder",
    "DatabaseBrokerSubscriberQueue",
    "DatabaseBrokerSubscriberQueueBuilder",
    "DiscoveryClient",
    "DiscoveryConnector",
    "EnrouteCollector",
    "EnrouteDecorator",
    "EnrouteDecoratorKind",
    "EnrouteFactory",
    "FilteredBrokerSubscriber",
    "Handler",
    "HandlerMeta",
    "HandlerWrapper",
    "HttpAdapter",
    "HttpConnector",
    "HttpEnrouteDecorator",
    "HttpPort",
    "HttpRequest",
    "HttpResponse",
    "HttpResponseException",
    "HttpRouter",
    "InMemoryBrokerPublisher",
    "InMemoryBrokerPublisherQueue",
    "InMemoryBrokerQueue",
    "InMemoryBrokerSubscriber",
    "InMemoryBrokerSubscriberBuilder",
    "InMemoryBrokerSubscriberDuplicateValidator",
    "InMemoryBrokerSubscriberQueue",
    "InMemoryBrokerSubscriberQueueBuilder",
    "InMemoryDiscoveryClient",
    "InMemoryRequest",
    "MinosActionNotFoundException",
    "MinosDiscoveryConnectorException",
    "MinosHandlerException",
    "MinosHandlerNotFoundEnoughEntriesException",
    "MinosInvalidDiscoveryClient",
    "MinosMultipleEnrouteDecoratorKindsException",
    "MinosNetworkException",
    "MinosRedefinedEnrouteDecoratorException",
    "NotHasContentException",
    "NotHasParamsException",
    "NotSatisfiedCheckerException",
    "OpenAPIService",
    "PeriodicEnrouteDecorator",
    "PeriodicEventEnrouteDecorator",
    "PeriodicPort",
    "PeriodicRouter",
    "PeriodicTask",
    "PeriodicTaskScheduler",
    "PeriodicTaskSchedulerService",
    "QueuedBrokerPublisher",
    "QueuedBrokerSubscriber",
    "QueuedBrokerSubscriberBuilder",
    "REQUEST_HEADERS_CONTEXT_VAR",
    "REQUEST_REPLY_TOPIC_CONTEXT_VAR",
    "REQUEST_USER_CONTEXT_VAR",
    "Request",
    "RequestException",
    "Response",
    "ResponseException",
    "RestCommandEnrouteDecorator",
    "RestEnrouteDecorator",
    "RestHttpRouter",
    "RestQueryEnrouteDecorator",
    "RestService",
    "Router",
    "ScheduledRequest",
    "ScheduledRequestContent",
    "ScheduledResponseException",
    "SystemService",
    "WrappedRequest",
    "consume_queue",
    "enroute",
    "get_host_ip",
    "get_host_name",
    "get_ip",
]

# Those with no place here: 0.7's queues, validators, builders, database operation factories, and its
# deprecated service names.
REMOVED = {
    "BrokerHandlerService", "BrokerPublisherBuilder", "BrokerPublisherQueue",
    "BrokerPublisherQueueDatabaseOperationFactory", "BrokerQueue", "BrokerQueueDatabaseOperationFactory",
    "BrokerSubscriberBuilder", "BrokerSubscriberDuplicateValidator",
    "BrokerSubscriberDuplicateValidatorDatabaseOperationFactory", "BrokerSubscriberQueue",
    "BrokerSubscriberQueueBuilder", "BrokerSubscriberQueueDatabaseOperationFactory", "BrokerSubscriberValidator",
    "DatabaseBrokerPublisherQueue", "DatabaseBrokerQueue", "DatabaseBrokerQueueBuilder",
    "DatabaseBrokerSubscriberDuplicateValidator", "DatabaseBrokerSubscriberDuplicateValidatorBuilder",
    "DatabaseBrokerSubscriberQueue", "DatabaseBrokerSubscriberQueueBuilder", "FilteredBrokerSubscriber",
    "InMemoryBrokerPublisherQueue", "InMemoryBrokerQueue", "InMemoryBrokerSubscriberBuilder",
    "InMemoryBrokerSubscriberDuplicateValidator", "InMemoryBrokerSubscriberQueue",
    "InMemoryBrokerSubscriberQueueBuilder", "PeriodicTaskSchedulerService", "QueuedBrokerPublisher",
    "QueuedBrokerSubscriber", "QueuedBrokerSubscriberBuilder", "RestService",
}  # fmt: skip


def test_the_list_of_0_7_names_is_whole():
    assert len(NAMES_07) == len(set(NAMES_07)) == 115
    assert REMOVED.issubset(NAMES_07)


@pytest.mark.parametrize("name", sorted(set(NAMES_07) - REMOVED))
def test_item_13_a_0_7_name_imports_and_is_exported(name):
    namespace: dict[str, object] = {}
    exec(f"from minos.networks import {name}", namespace)
    assert namespace[name] is getattr(minos.networks, name)
    assert name in minos.networks.__all__


@pytest.mark.parametrize("name", sorted(REMOVED))
def test_item_13_a_0_7_name_with_no_place_here_says_what_to_use_instead(name):
    with pytest.raises(
        ImportError, match=rf"^minos.networks has no {name} \(a name of minos 0.7\): .+; use .+ instead$"
    ):
        exec(f"from minos.networks import {name}", {})
    with pytest.raises(ImportError, match=r"use .+ instead"):
        getattr(importlib.import_module("minos.networks"), name)
    assert name not in minos.networks.__all__


def test_item_13_other_missing_names_are_plain_attribute_errors():
    assert not hasattr(minos.networks, "NoSuchThing")
    with pytest.raises(ImportError, match="cannot import name 'NoSuchThing'"):
        exec("from minos.networks import NoSuchThing", {})
