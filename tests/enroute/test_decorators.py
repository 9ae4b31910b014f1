"""The @enroute decorators: values attached as metadata to functions that stay as they were."""

import inspect

import pytest
from croniter import croniter

from minos.networks.enroute import (
    BrokerCommandEnrouteDecorator,
    BrokerEnroute,
    BrokerEnrouteDecorator,
    BrokerEventEnrouteDecorator,
    BrokerQueryEnrouteDecorator,
    EnrouteDecorator,
    HandlerMeta,
    HandlerWrapper,
    HttpEnrouteDecorator,
    PeriodicEnroute,
    PeriodicEnrouteDecorator,
    PeriodicEventEnrouteDecorator,
    RestCommandEnrouteDecorator,
    RestEnroute,
    RestEnrouteDecorator,
    RestQueryEnrouteDecorator,
    enroute,
)
from minos.networks.exceptions import MinosMultipleEnrouteDecoratorKindsException
from minos.networks.periodic import CronTab
from minos.networks.protocol import EnrouteDecoratorKind, InMemoryRequest, Response


def test_enroute_offers_every_decorator_class_by_transport_and_kind():
    assert enroute.broker is BrokerEnroute
    assert enroute.rest is RestEnroute
    assert enroute.periodic is PeriodicEnroute
    assert enroute.broker.command is BrokerCommandEnrouteDecorator
    assert enroute.broker.query is BrokerQueryEnrouteDecorator
    assert enroute.broker.event is BrokerEventEnrouteDecorator
    assert enroute.rest.command is RestCommandEnrouteDecorator
    assert enroute.rest.query is RestQueryEnrouteDecorator
    assert enroute.periodic.event is PeriodicEventEnrouteDecorator


@pytest.mark.parametrize(
    ("decorator", "base", "kind"),
    [
        (enroute.broker.command("a"), BrokerEnrouteDecorator, EnrouteDecoratorKind.Command),
        (enroute.broker.query("a"), BrokerEnrouteDecorator, EnrouteDecoratorKind.Query),
        (enroute.broker.event("a"), BrokerEnrouteDecorator, EnrouteDecoratorKind.Event),
        (enroute.rest.command("/a", "POST"), RestEnrouteDecorator, EnrouteDecoratorKind.Command),
        (enroute.rest.query("/a", "GET"), RestEnrouteDecorator, EnrouteDecoratorKind.Query),
        (enroute.periodic.event("* * * * *"), PeriodicEnrouteDecorator, EnrouteDecoratorKind.Event),
    ],
)
def test_each_decorator_has_its_transport_base_and_kind_with_the_hook_names_of_that_kind(
    decorator, base, kind
):
    assert isinstance(decorator, base)
    assert isinstance(decorator, EnrouteDecorator)
    assert decorator.KIND is kind
    assert decorator.pre_fn_name == f"_pre_{kind.name.lower()}_handle"
    assert decorator.post_fn_name == f"_post_{kind.name.lower()}_handle"


def test_rest_decorators_are_http_decorators():
    assert issubclass(RestEnrouteDecorator, HttpEnrouteDecorator)


def test_the_root_decorator_class_cannot_be_built():
    with pytest.raises(TypeError, match="EnrouteDecorator is abstract; use one of its kinds"):
        EnrouteDecorator()


@pytest.mark.parametrize(
    ("base", "args"),
    [
        (BrokerEnrouteDecorator, ("a",)),
        (HttpEnrouteDecorator, ("/a", "GET")),
        (RestEnrouteDecorator, ("/a", "GET")),
        (PeriodicEnrouteDecorator, ("@daily",)),
    ],
)
def test_a_base_decorator_class_can_be_built_as_in_minos_07_but_routes_nothing_as_it_has_no_kind(base, args):
    decorator = base(*args)
    assert tuple(decorator) == tuple(decorator)  # a value, like any other decorator

    def handler(request):
        return None

    with pytest.raises(TypeError, match="has no kind, so it cannot route a handler"):
        decorator(handler)
    assert not hasattr(handler, "meta")


def test_decorators_built_from_the_same_fields_are_equal_and_hash_alike():
    assert BrokerCommandEnrouteDecorator("user.create") == enroute.broker.command("user.create")
    assert hash(BrokerCommandEnrouteDecorator("user.create")) == hash(enroute.broker.command("user.create"))
    assert enroute.rest.query("/users", "get") == enroute.rest.query("/users", "GET")
    assert enroute.periodic.event("0 */5 * * * *") == enroute.periodic.event("0 */5 * * * *")
    assert len({enroute.broker.event("a"), enroute.broker.event("a"), enroute.broker.event("b")}) == 2


def test_decorators_of_different_kinds_or_fields_differ():
    assert enroute.broker.command("a") != enroute.broker.query("a")
    assert enroute.broker.command("a") != enroute.broker.command("b")
    assert enroute.rest.query("/a", "GET") != enroute.rest.query("/a", "POST")
    assert enroute.broker.command("a") != "a"


def test_extra_keyword_arguments_are_kept_but_are_not_part_of_the_value():
    decorator = enroute.broker.command("user.create", description="Creates a user", tags=["users"])
    assert dict(decorator.kwargs) == {"description": "Creates a user", "tags": ["users"]}
    assert decorator == enroute.broker.command("user.create")
    assert hash(decorator) == hash(enroute.broker.command("user.create")) == hash(("user.create",))
    assert enroute.rest.query("/a", "GET", schema={"type": "object"}) == enroute.rest.query("/a", "GET")


def test_the_kept_keyword_arguments_are_read_only():
    decorator = enroute.broker.command("a", x=1)
    with pytest.raises(TypeError):
        decorator.kwargs["x"] = 2  # type: ignore[index]


def test_decorators_expose_their_fields_by_name_and_by_iteration():
    assert enroute.broker.event("user.created").topic == "user.created"
    rest = enroute.rest.command("/users", "post")
    assert (rest.url, rest.path, rest.method) == ("/users", "/users", "POST")
    assert tuple(rest) == ("/users", "POST")
    periodic = enroute.periodic.event("@hourly")
    assert periodic.crontab == CronTab("@hourly")


def test_decorators_have_a_readable_repr():
    assert repr(enroute.broker.command("user.create")) == "BrokerCommandEnrouteDecorator('user.create')"
    assert repr(enroute.rest.query("/u", "GET", a=1)) == "RestQueryEnrouteDecorator('/u', 'GET', a=1)"
    assert repr(enroute.periodic.event("0 */5 * * * *")) == "PeriodicEventEnrouteDecorator('0 */5 * * * *')"


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: enroute.broker.command(""), ValueError, "topic must not be empty"),
        (lambda: enroute.broker.event(3), TypeError, "topic must be a str"),
        (lambda: enroute.rest.query("", "GET"), ValueError, "path must not be empty"),
        (lambda: enroute.rest.query("/a", 3), TypeError, "method must be a str"),
        (lambda: enroute.rest.query("/a", None), ValueError, "the HTTP route '/a' needs a method"),
        (lambda: enroute.rest.query(method="GET"), ValueError, "an HTTP route needs a path"),
    ],
)
def test_a_decorator_with_a_missing_or_mistyped_field_says_which(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_a_periodic_decorator_validates_its_crontab_when_it_is_built():
    with pytest.raises(ValueError, match=r"invalid crontab pattern '61 \* \* \* \*'"):
        enroute.periodic.event("61 * * * *")
    with pytest.raises(ValueError, match="'every day'"):
        enroute.periodic.event("every day")


def test_a_periodic_decorator_takes_a_crontab_or_a_croniter_too():
    assert enroute.periodic.event(CronTab("*/5 * * * *")) == enroute.periodic.event("*/5 * * * *")
    assert enroute.periodic.event(croniter("*/5 * * * *")) == enroute.periodic.event("*/5 * * * *")


async def test_a_decorated_async_function_is_returned_as_it_was_and_records_its_routes():
    async def create_user(request):
        """Creates a user."""
        return Response(await request.content())

    original_signature = inspect.signature(create_user)
    decorated = enroute.broker.command("user.create")(create_user)

    assert decorated is create_user
    assert decorated.__name__ == "create_user"
    assert decorated.__doc__ == "Creates a user."
    assert inspect.signature(decorated) == original_signature
    assert inspect.iscoroutinefunction(decorated)
    assert await decorated(InMemoryRequest({"a": 1})) == Response({"a": 1})
    assert isinstance(decorated.meta, HandlerMeta)
    assert decorated.meta.decorators == {enroute.broker.command("user.create")}
    assert isinstance(decorated, HandlerWrapper)


def test_a_decorated_sync_function_stays_sync_and_directly_callable():
    @enroute.broker.query("user.get")
    def get_user(request):
        return Response("sync")

    assert not inspect.iscoroutinefunction(get_user)
    assert get_user(InMemoryRequest()) == Response("sync")


def test_stacked_decorators_of_one_kind_share_one_metadata_across_transports():
    class Service:
        @enroute.rest.command("/users", "POST")
        @enroute.broker.command("user.create")
        async def create(self, request):
            return None

    assert Service.create.meta.decorators == {
        enroute.broker.command("user.create"),
        enroute.rest.command("/users", "POST"),
    }
    assert Service.create.meta.kind is EnrouteDecoratorKind.Command


async def test_static_and_class_methods_can_be_decorated_in_either_order_and_stay_callable():
    class Service:
        @enroute.broker.query("a")
        @staticmethod
        async def static_outside(request):
            return Response("static-outside")

        @staticmethod
        @enroute.broker.query("b")
        def static_inside(request):
            return Response("static-inside")

        @enroute.broker.query("c")
        @classmethod
        async def class_outside(cls, request):
            return Response(cls.__name__)

        @classmethod
        @enroute.broker.query("d")
        def class_inside(cls, request):
            return Response(cls.__name__)

    request = InMemoryRequest()
    assert await Service.static_outside(request) == Response("static-outside")
    assert Service().static_inside(request) == Response("static-inside")
    assert await Service.class_outside(request) == Response("Service")
    assert Service.class_inside(request) == Response("Service")
    assert Service.static_outside.meta.decorators == {enroute.broker.query("a")}
    assert Service.class_inside.meta.decorators == {enroute.broker.query("d")}


def test_stacking_decorators_of_two_kinds_fails_when_the_class_is_defined_and_names_both():
    with pytest.raises(MinosMultipleEnrouteDecoratorKindsException) as caught:

        class Service:
            @enroute.broker.query("user.get")
            @enroute.broker.command("user.create")
            async def both(self, request):
                return None

    message = str(caught.value)
    assert "'test_stacking_decorators_of_two_kinds_fails_when_the_class_is_defined_and_names_both" in message
    assert "Service.both'" in message
    assert "Command (BrokerCommandEnrouteDecorator('user.create'))" in message
    assert "Query (BrokerQueryEnrouteDecorator('user.get'))" in message
    assert "split it into two methods" in message


def test_an_event_cannot_be_stacked_with_a_command_even_on_another_transport():
    with pytest.raises(MinosMultipleEnrouteDecoratorKindsException, match=r"Event .* Command"):

        @enroute.rest.command("/a", "POST")
        @enroute.periodic.event("@daily")
        async def handler(request):
            return None


def test_applying_the_same_decorator_twice_records_one_route():
    @enroute.broker.event("a")
    @enroute.broker.event("a")
    def handler(request):
        return None

    assert handler.meta.decorators == {enroute.broker.event("a")}


def test_only_callables_can_be_decorated():
    with pytest.raises(TypeError, match="only functions, staticmethods and classmethods can be decorated"):
        enroute.broker.command("a")("not a function")
