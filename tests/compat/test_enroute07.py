"""Items 6, 7 and 10 of issue 17: 0.7's decorator call styles, checker delays and route factory."""

import warnings
from datetime import timedelta

import pytest

from minos.networks import (
    BrokerQueryEnrouteDecorator,
    CheckDecorator,
    EnrouteCollector,
    EnrouteFactory,
    HttpEnrouteDecorator,
    RestCommandEnrouteDecorator,
    RestQueryEnrouteDecorator,
    enroute,
)


def test_item_6_rest_routes_take_path_and_method_by_keyword_and_url_still_works_with_a_warning():
    decorator = enroute.rest.command(path="/orders", method="GET")
    assert (decorator.path, decorator.url, decorator.method) == ("/orders", "/orders", "GET")
    with pytest.deprecated_call(match="'url' argument is deprecated; write path='/orders' instead"):
        legacy = enroute.rest.command(url="/orders", method="GET")
    assert legacy == decorator
    with pytest.raises(ValueError, match="needs a path"):
        enroute.rest.query(method="GET")
    with pytest.raises(ValueError, match="needs a method"):
        enroute.rest.query(path="/orders")
    built = HttpEnrouteDecorator("p", "GET")  # the base class builds, as in 0.7
    assert (built.path, built.method, tuple(built)) == ("p", "GET", ("p", "GET"))


def test_item_6_a_decorator_equals_and_hashes_by_its_kind_and_routing_fields_not_its_extra_keywords():
    described = enroute.rest.query(path="/orders", method="GET", summary="Every order")
    assert described == enroute.rest.query(path="/orders", method="GET")
    assert hash(described) == hash(("/orders", "GET")) == hash(enroute.rest.query("/orders", "GET"))
    assert described.kwargs == {"summary": "Every order"}
    assert enroute.rest.query("/orders", "GET") != enroute.rest.command("/orders", "GET")
    assert enroute.broker.query("GetOrders") != enroute.broker.event("GetOrders")


def test_item_6_the_service_module_decorated_in_0_7_styles_imports_and_routes(service07):
    collected = EnrouteCollector(service07.OrderQueryService).get_all()
    assert collected["get_orders"] == {
        RestQueryEnrouteDecorator("/orders", "GET"),
        BrokerQueryEnrouteDecorator("GetOrders"),
    }
    commands = EnrouteCollector(service07.OrderCommandService).get_rest_command_query()
    assert commands["create_order"] == {RestCommandEnrouteDecorator("/orders", "POST")}


def test_item_7_a_checker_delay_may_be_a_timedelta(service07):
    (checker,) = service07.OrderCommandService.create_order.meta.checkers
    assert (checker.max_attempts, checker.delay) == (2, 0.001)
    decorator = CheckDecorator(
        service07.OrderCommandService.create_order.meta, 3, timedelta(seconds=2, milliseconds=500)
    )
    assert decorator.delay == 2.5
    with pytest.raises(ValueError, match="delay must be a finite number of seconds, 0 or more"):
        CheckDecorator(service07.OrderCommandService.create_order.meta, 3, timedelta(seconds=-1))


def test_item_10_the_factory_names_its_classes_as_0_7_did(service07):
    factory = EnrouteFactory(service07.OrderCommandService, "service07.OrderQueryService")
    assert factory.classes == (service07.OrderCommandService, service07.OrderQueryService)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(factory.get_rest_command_query()) == {
            enroute.rest.command("/orders", "POST"),
            enroute.rest.command("/orders/{order_id}", "DELETE"),
            enroute.rest.query("/orders", "GET"),
            enroute.rest.query("/orders/{order_id}", "GET"),
        }
