"""Route collection: finding handlers, building services once, composing hooks, checkers and middleware."""

import inspect
import logging

import pytest

from minos.common import Config
from minos.networks.enroute import EnrouteCollector, EnrouteFactory, enroute, import_object
from minos.networks.exceptions import (
    MinosEnrouteDecoratorException,
    MinosMultipleEnrouteDecoratorKindsException,
    MinosRedefinedEnrouteDecoratorException,
    NotSatisfiedCheckerException,
)
from minos.networks.protocol import InMemoryRequest, Response

# -- import paths ----------------------------------------------------------------------------------------


def test_import_object_reads_dotted_and_colon_paths():
    assert import_object("minos.networks.enroute.EnrouteFactory") is EnrouteFactory
    assert import_object("minos.networks.enroute:EnrouteFactory") is EnrouteFactory
    assert import_object("minos.networks.enroute:EnrouteFactory.get_all") is EnrouteFactory.get_all
    assert import_object("minos.networks.enroute.EnrouteFactory.get_all") is EnrouteFactory.get_all


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_package_xyz.mod.Thing", "cannot import 'no_such_package_xyz.mod.Thing': no module of it"),
        (
            "minos.networks.enroute.NoSuchThing",
            "module 'minos.networks.enroute' has no attribute 'NoSuchThing'",
        ),
        (
            "minos.networks.enroute:NoSuchThing",
            "module 'minos.networks.enroute' has no attribute 'NoSuchThing'",
        ),
        ("nodots", "cannot import 'nodots'"),
    ],
)
def test_an_import_path_that_cannot_be_imported_is_named_in_the_error(path, message):
    with pytest.raises(ImportError, match=message):
        import_object(path)


def test_a_module_failing_inside_its_own_imports_is_reported_not_skipped(make_module):
    name = make_module("import a_module_nobody_installed_xyz\nclass Service: pass\n")
    with pytest.raises(
        ImportError, match=f"cannot import '{name}.Service': importing module '{name}' failed"
    ):
        import_object(f"{name}.Service")


# -- collecting handlers ---------------------------------------------------------------------------------


class Base:
    @enroute.broker.command("base.create")
    async def create(self, request):
        return Response("base")

    @enroute.broker.query("base.get")
    def get(self, request):
        return Response("get")

    def helper(self):
        return "not a handler"


class Derived(Base):
    async def create(self, request):  # overridden without a decorator: no longer a route
        return Response("derived")

    @enroute.rest.query("/things", "GET")
    async def things(self, request):
        return Response([])

    @enroute.broker.event("thing.created")
    @enroute.periodic.event("@daily")
    async def on_event(self, request):
        return None


def test_the_collector_finds_decorated_methods_through_the_bases_in_definition_order():
    assert EnrouteCollector(Base).get_all() == {
        "create": {enroute.broker.command("base.create")},
        "get": {enroute.broker.query("base.get")},
    }
    collected = EnrouteCollector(Derived).get_all()
    assert list(collected) == ["get", "things", "on_event"]
    assert collected["on_event"] == {enroute.broker.event("thing.created"), enroute.periodic.event("@daily")}


def test_the_collector_accepts_an_instance_or_an_import_path(make_module):
    assert EnrouteCollector(Derived()).get_all() == EnrouteCollector(Derived).get_all()
    name = make_module(
        """
        from minos.networks.enroute import enroute

        class Service:
            @enroute.broker.event("a")
            def on_a(self, request):
                return None
        """
    )
    collector = EnrouteCollector(f"{name}.Service")
    assert collector.service_class.__name__ == "Service"
    assert collector.get_all() == {"on_a": {enroute.broker.event("a")}}


def test_the_collector_filters_by_transport_and_kind():
    collector = EnrouteCollector(Derived)
    assert collector.get_broker_command_query_event() == {
        "get": {enroute.broker.query("base.get")},
        "on_event": {enroute.broker.event("thing.created")},
    }
    assert collector.get_broker_command_query() == {"get": {enroute.broker.query("base.get")}}
    assert collector.get_broker_event() == {"on_event": {enroute.broker.event("thing.created")}}
    assert collector.get_rest_command_query() == {"things": {enroute.rest.query("/things", "GET")}}
    assert collector.get_periodic_event() == {"on_event": {enroute.periodic.event("@daily")}}


def test_a_service_may_give_its_routes_itself_with_get_enroute_which_receives_the_config():
    seen = []

    class Service:
        @classmethod
        def __get_enroute__(cls, config):
            seen.append(config)
            return {"handle": {enroute.broker.command(config.get("topic"))}}

        async def handle(self, request):
            return Response("handled")

    config = Config({"name": "svc", "topic": "configured.topic"}, environ={})
    assert EnrouteCollector(Service, config).get_all() == {
        "handle": {enroute.broker.command("configured.topic")}
    }
    assert seen == [config]


def test_get_enroute_naming_a_missing_method_is_an_error():
    class Service:
        @classmethod
        def __get_enroute__(cls, config):
            return {"missing": {enroute.broker.command("a")}}

    with pytest.raises(
        MinosEnrouteDecoratorException, match="names 'missing', which the service does not have"
    ):
        EnrouteCollector(Service).get_all()


def test_get_enroute_giving_a_method_two_kinds_is_an_error():
    class Service:
        @classmethod
        def __get_enroute__(cls, config):
            return {"handle": {enroute.broker.command("a"), enroute.broker.event("b")}}

        def handle(self, request):
            return None

    with pytest.raises(MinosMultipleEnrouteDecoratorKindsException, match="gives 'handle' several kinds"):
        EnrouteCollector(Service).get_all()


# -- building services -----------------------------------------------------------------------------------


async def test_every_route_is_an_async_callable_whether_the_handler_is_sync_or_async():
    routes = EnrouteFactory(Base).get_all()
    assert set(routes) == {enroute.broker.command("base.create"), enroute.broker.query("base.get")}
    for action in routes.values():
        assert inspect.iscoroutinefunction(action)
    assert await routes[enroute.broker.command("base.create")](InMemoryRequest()) == Response("base")
    assert await routes[enroute.broker.query("base.get")](InMemoryRequest()) == Response("get")


async def test_static_and_class_method_handlers_are_routed():
    class Service:
        @enroute.broker.query("static")
        @staticmethod
        def static(request):
            return Response("static")

        @classmethod
        @enroute.broker.query("class")
        async def klass(cls, request):
            return Response(cls.__name__)

    routes = EnrouteFactory(Service).get_all()
    assert await routes[enroute.broker.query("static")](InMemoryRequest()) == Response("static")
    assert await routes[enroute.broker.query("class")](InMemoryRequest()) == Response("Service")


def test_a_service_class_is_built_once_per_call_not_once_per_decorator():
    built = []

    class Service:
        def __init__(self):
            built.append(self)

        @enroute.broker.command("a")
        @enroute.rest.command("/a", "POST")
        async def a(self, request):
            return None

        @enroute.broker.query("b")
        async def b(self, request):
            return None

    factory = EnrouteFactory(Service)
    factory.get_all()
    assert len(built) == 1
    factory.get_broker_command_query_event()
    assert len(built) == 2


def test_a_service_without_routes_of_the_kind_asked_for_is_not_built():
    built = []

    class Service:
        def __init__(self):
            built.append(self)

        @enroute.rest.query("/a", "GET")
        async def a(self, request):
            return None

    assert EnrouteFactory(Service).get_broker_command_query_event() == {}
    assert built == []


async def test_a_service_taking_a_required_argument_is_built_with_the_config():
    class OpenAPILikeService:
        def __init__(self, config):
            self.config = config

        @enroute.rest.query("/spec/openapi", "GET")
        async def spec(self, request):
            return Response({"title": self.config.name})

    config = Config({"name": "users"}, environ={})
    routes = EnrouteFactory(OpenAPILikeService, config=config).get_rest_command_query()
    assert await routes[enroute.rest.query("/spec/openapi", "GET")](InMemoryRequest()) == Response(
        {"title": "users"}
    )


def test_a_service_needing_the_config_without_one_says_how_to_fix_it():
    class Service:
        def __init__(self, config):
            self.config = config

        @enroute.broker.command("a")
        async def a(self, request):
            return None

    with pytest.raises(TypeError, match=r"requires 'config' \(the Config\) and none was given; pass config="):
        EnrouteFactory(Service).get_all()


def test_a_service_needing_more_than_the_config_is_refused_with_its_parameters():
    class Service:
        def __init__(self, config, *, client):
            pass

        @enroute.broker.command("a")
        async def a(self, request):
            return None

    with pytest.raises(TypeError, match=r"requires \['config', 'client'\].*pass an instance"):
        EnrouteFactory(Service, config=Config({"name": "x"}, environ={})).get_all()


async def test_a_service_instance_is_used_as_it_is():
    class Service:
        def __init__(self, greeting):
            self.greeting = greeting

        @enroute.broker.query("greet")
        async def greet(self, request):
            return Response(self.greeting)

    routes = EnrouteFactory(Service("hello")).get_all()
    assert await routes[enroute.broker.query("greet")](InMemoryRequest()) == Response("hello")


# -- middleware and hooks --------------------------------------------------------------------------------


def _recording_middleware(name, log):
    async def middleware(request, inner):
        log.append(f"{name}:in")
        response = await inner(request)
        log.append(f"{name}:out")
        return response

    return middleware


class Hooked:
    def __init__(self):
        self.log = []

    def _pre_command_handle(self, request):
        self.log.append("pre-command")
        return InMemoryRequest(("pre", request))

    async def _post_command_handle(self, response):
        self.log.append("post-command")
        return Response(("post", await response.content()))

    async def _pre_query_handle(self, request):
        self.log.append("pre-query")
        return request

    def _post_event_handle(self, response):
        self.log.append("post-event")
        return response

    @enroute.broker.command("command")
    async def command(self, request):
        self.log.append("command")
        return Response(await request.content())

    @enroute.broker.query("query")
    def query(self, request):
        self.log.append("query")
        return Response("q")

    @enroute.broker.event("event")
    async def event(self, request):
        self.log.append("event")
        return None


async def test_the_first_middleware_listed_is_the_outermost_and_hooks_run_inside_them():
    service = Hooked()
    log = service.log
    factory = EnrouteFactory(
        service, middleware=[_recording_middleware("outer", log), _recording_middleware("inner", log)]
    )
    routes = factory.get_all()

    response = await routes[enroute.broker.command("command")](InMemoryRequest("x"))

    assert await response.content() == ("post", ("pre", InMemoryRequest("x")))
    assert log == ["outer:in", "inner:in", "pre-command", "command", "post-command", "inner:out", "outer:out"]


async def test_hooks_apply_to_the_kind_they_are_named_after_and_only_to_it():
    service = Hooked()
    routes = EnrouteFactory(service).get_all()

    await routes[enroute.broker.query("query")](InMemoryRequest())
    assert service.log == ["pre-query", "query"]
    service.log.clear()
    await routes[enroute.broker.event("event")](InMemoryRequest())
    assert service.log == ["event", "post-event"]


async def test_middleware_may_answer_without_calling_the_handler():
    async def deny(request, inner):
        return Response("denied", status=403)

    service = Hooked()
    routes = EnrouteFactory(service, middleware=[deny]).get_all()
    assert await routes[enroute.broker.command("command")](InMemoryRequest()) == Response(
        "denied", status=403
    )
    assert service.log == []


async def test_middleware_may_be_given_as_an_import_path_or_alone(make_module):
    name = make_module(
        """
        from minos.networks.protocol import Response

        async def tag(request, inner):
            response = await inner(request)
            return Response(("tagged", await response.content()))
        """
    )
    for middleware in (f"{name}.tag", f"{name}:tag", [f"{name}:tag"]):
        routes = EnrouteFactory(Base, middleware=middleware).get_all()
        assert await routes[enroute.broker.query("base.get")](InMemoryRequest()) == Response(
            ("tagged", "get")
        )


async def test_a_sync_middleware_returning_an_awaitable_is_awaited():
    def passthrough(request, inner):
        return inner(request)

    routes = EnrouteFactory(Base, middleware=[passthrough]).get_all()
    assert await routes[enroute.broker.query("base.get")](InMemoryRequest()) == Response("get")


def test_a_middleware_that_is_not_callable_is_refused(make_module):
    name = make_module("NOT_CALLABLE = 3\n")
    with pytest.raises(TypeError, match=f"middleware '{name}.NOT_CALLABLE' is not callable"):
        EnrouteFactory(Base, middleware=[f"{name}.NOT_CALLABLE"])


# -- checkers in routes ----------------------------------------------------------------------------------


class Guarded:
    def __init__(self):
        self.log = []
        self.allowed = True

    def _pre_command_handle(self, request):
        self.log.append("pre")
        return request

    @enroute.broker.command("guarded")
    async def guarded(self, request):
        self.log.append("handler")
        return Response("done")

    @guarded.check(max_attempts=2, delay=0)
    def is_allowed(self, request):
        self.log.append("method-checker")
        return self.allowed


def _free_checker(request):
    return True


Guarded.guarded.check(max_attempts=1, delay=0)(_free_checker)


async def test_checkers_run_after_the_pre_hook_and_before_the_handler_bound_to_the_service_when_methods():
    service = Guarded()
    routes = EnrouteFactory(service).get_all()
    assert await routes[enroute.broker.command("guarded")](InMemoryRequest()) == Response("done")
    assert service.log == ["pre", "method-checker", "handler"]


async def test_an_unsatisfied_checker_keeps_the_handler_from_running():
    service = Guarded()
    service.allowed = False
    routes = EnrouteFactory(service).get_all()
    with pytest.raises(
        NotSatisfiedCheckerException, match=r"checker 'Guarded.is_allowed' was not satisfied after 2"
    ):
        await routes[enroute.broker.command("guarded")](InMemoryRequest())
    assert service.log == ["pre", "method-checker", "method-checker"]


# -- one handler per command or query, all handlers of an event ------------------------------------------


class CreatesUsers:
    @enroute.broker.command("user.create")
    async def create(self, request):
        return None


class AlsoCreatesUsers:
    @enroute.broker.command("user.create")
    async def create_too(self, request):
        return None


def test_two_handlers_of_one_command_are_an_error_naming_both():
    with pytest.raises(MinosRedefinedEnrouteDecoratorException) as caught:
        EnrouteFactory(CreatesUsers, AlsoCreatesUsers).get_all()
    command = "BrokerCommandEnrouteDecorator('user.create')"
    assert str(caught.value) == (
        f"{command} on handler '{__name__}.AlsoCreatesUsers.create_too' redefines {command} on handler "
        f"'{__name__}.CreatesUsers.create': a command or query route has exactly one handler, so rename one "
        "route or remove one handler"
    )


def test_a_command_and_a_query_on_one_topic_are_an_error_too():
    class Reads:
        @enroute.broker.query("user.create")
        async def read(self, request):
            return None

    with pytest.raises(MinosRedefinedEnrouteDecoratorException, match=r"Query.*'user\.create'.*redefines"):
        EnrouteFactory(CreatesUsers, Reads).get_all()


def test_two_rest_handlers_of_one_path_and_method_are_an_error():
    class Service:
        @enroute.rest.query("/users", "GET")
        async def one(self, request):
            return None

        @enroute.rest.query("/users", "get", summary="again")
        async def two(self, request):
            return None

    with pytest.raises(MinosRedefinedEnrouteDecoratorException, match=r"Service.two'.*Service.one'"):
        EnrouteFactory(Service).get_rest_command_query()


def test_one_handler_registered_twice_through_equivalent_decorators_is_one_route():
    class Service:
        @enroute.broker.event("a", description="x")
        @enroute.broker.event("a")
        async def on_a(self, request):
            return None

    assert list(EnrouteFactory(Service).get_all()) == [enroute.broker.event("a")]


class FirstListener:
    def __init__(self):
        self.log = []

    @enroute.broker.event("user.created")
    async def first(self, request):
        self.log.append("first")
        raise ValueError("first failed")


class SecondListener:
    def __init__(self):
        self.log = []

    @enroute.broker.event("user.created", description="also listens")
    def second(self, request):
        self.log.append("second")
        raise KeyError("second failed")


class ThirdListener:
    def __init__(self):
        self.log = []

    @enroute.broker.event("user.created")
    async def third(self, request):
        self.log.append("third")
        return Response("ignored")


async def test_all_handlers_of_an_event_run_in_order_under_one_route_that_returns_none():
    log: list[str] = []

    class Audit:
        @enroute.broker.event("user.created")
        def audit(self, request):
            log.append("audit")

    third = ThirdListener()
    third.log = log
    routes = EnrouteFactory(third, Audit, third).get_all()
    assert list(routes) == [enroute.broker.event("user.created")]
    assert await routes[enroute.broker.event("user.created")](InMemoryRequest()) is None
    assert log == ["third", "audit", "third"]


async def test_when_event_handlers_fail_the_others_still_run_and_the_first_error_is_raised(caplog):
    first, second, third = FirstListener(), SecondListener(), ThirdListener()
    second.log = third.log = first.log
    routes = EnrouteFactory(first, second, third).get_broker_event()
    action = routes[enroute.broker.event("user.created")]

    with caplog.at_level(logging.WARNING), pytest.raises(ValueError, match="first failed"):
        await action(InMemoryRequest())

    assert first.log == ["first", "second", "third"]
    assert "SecondListener.second" in caplog.text
    assert "KeyError: 'second failed'" in caplog.text
    assert action.__qualname__ == (
        f"{__name__}.FirstListener.first + {__name__}.SecondListener.second + {__name__}.ThirdListener.third"
    )
