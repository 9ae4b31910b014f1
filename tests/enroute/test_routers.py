"""Routers: the seed's UserService collected per transport, services built once, routes from a Config."""

import inspect

import pytest

from minos.common import Config
from minos.networks.enroute import (
    BrokerRouter,
    HttpRouter,
    PeriodicRouter,
    RestHttpRouter,
    Router,
    enroute,
)
from minos.networks.enroute.decorators import (
    BrokerCommandEnrouteDecorator,
    PeriodicEventEnrouteDecorator,
    RestQueryEnrouteDecorator,
)
from minos.networks.exceptions import MinosRedefinedEnrouteDecoratorException
from minos.networks.protocol import InMemoryRequest, Request, Response


# The seed's example, as written there.
class UserService:
    @enroute.broker.command("user.create")
    async def create_user(self, request: Request) -> Response:
        user_data = await request.content()
        # Process user creation logic
        return Response({"id": "123", "status": "created", "data": user_data})

    @enroute.rest.query("/users/{user_id}", method="GET")
    async def get_user(self, request: Request) -> Response:
        params = await request.params()
        user_id = params["user_id"]
        # Fetch user logic
        return Response({"id": user_id, "name": "John Doe"})

    @enroute.periodic.event("0 */5 * * * *")  # Every 5 minutes
    async def cleanup_task(self, request: Request) -> Response:
        # Periodic cleanup logic
        return Response({"status": "cleanup_completed"})


async def test_the_seed_user_service_gives_each_router_its_own_routes():
    broker = BrokerRouter([UserService])
    rest = RestHttpRouter([UserService])
    periodic = PeriodicRouter([UserService])

    assert list(broker.routes) == [BrokerCommandEnrouteDecorator("user.create")]
    assert list(rest.routes) == [RestQueryEnrouteDecorator("/users/{user_id}", "GET")]
    assert list(periodic.routes) == [PeriodicEventEnrouteDecorator("0 */5 * * * *")]

    create = broker.routes[enroute.broker.command("user.create")]
    assert await create(InMemoryRequest({"name": "Ann"})) == Response(
        {"id": "123", "status": "created", "data": {"name": "Ann"}}
    )
    get = rest.get_routes()[enroute.rest.query("/users/{user_id}", "GET")]
    assert await get(InMemoryRequest(params={"user_id": "42"})) == Response({"id": "42", "name": "John Doe"})
    cleanup = periodic.routes[enroute.periodic.event("0 */5 * * * *")]
    assert await cleanup(InMemoryRequest()) == Response({"status": "cleanup_completed"})


def test_the_seed_handlers_stay_directly_callable_methods():
    assert UserService.create_user.__name__ == "create_user"
    assert list(inspect.signature(UserService.get_user).parameters) == ["self", "request"]


def test_routes_are_built_once_on_first_use_and_again_on_request():
    built = []

    class Service:
        def __init__(self):
            built.append(self)

        @enroute.broker.command("a")
        async def a(self, request):
            return None

        @enroute.broker.event("b")
        async def b(self, request):
            return None

    router = BrokerRouter([Service])
    assert built == []
    first = router.routes
    assert router.get_routes() is first
    assert len(built) == 1
    router.build_routes()
    assert len(built) == 2
    assert router.routes is not first
    assert router.routes.keys() == first.keys()


def test_the_base_routers_are_abstract():
    for abstract in (Router, HttpRouter):
        with pytest.raises(TypeError, match="abstract"):
            abstract([UserService])


async def test_a_router_takes_its_services_config_and_middleware_explicitly():
    calls = []

    async def count(request, inner):
        calls.append(request)
        return await inner(request)

    class SpecService:
        def __init__(self, config):
            self.name = config.name

        @enroute.rest.query("/spec", "GET")
        async def spec(self, request):
            return Response(self.name)

    config = Config({"name": "users"}, environ={})
    router = RestHttpRouter([SpecService, UserService], config=config, middleware=[count])
    request = InMemoryRequest()
    assert await router.routes[enroute.rest.query("/spec", "GET")](request) == Response("users")
    assert calls == [request]
    assert "SpecService" in repr(router)


async def test_a_router_is_built_from_the_services_and_middleware_of_a_config(make_module):
    name = make_module(
        """
        from minos.networks.enroute import enroute
        from minos.networks.protocol import Response

        class OpenAPIService:
            def __init__(self, config):
                self.config = config

            @enroute.rest.query("/spec/openapi", "GET")
            async def generate_specification(self, request):
                return Response({"info": {"title": self.config.name}})

        async def wrap(request, inner):
            response = await inner(request)
            return Response({"wrapped": await response.content()})
        """
    )
    config = Config(
        {
            "name": "users",
            "services": [f"{name}.OpenAPIService", UserService],
            "middleware": [f"{name}.wrap"],
        },
        environ={},
    )
    router = RestHttpRouter.from_config(config)
    assert set(router.routes) == {
        enroute.rest.query("/spec/openapi", "GET"),
        enroute.rest.query("/users/{user_id}", "GET"),
    }
    spec = router.routes[enroute.rest.query("/spec/openapi", "GET")]
    assert await spec(InMemoryRequest()) == Response({"wrapped": {"info": {"title": "users"}}})


def test_a_config_naming_a_service_that_cannot_be_imported_fails_naming_it():
    config = Config({"name": "users", "services": ["no_such_package_xyz.Service"]}, environ={})
    router = BrokerRouter.from_config(config)
    with pytest.raises(ImportError, match=r"cannot import 'no_such_package_xyz\.Service'"):
        router.build_routes()


def test_two_services_claiming_one_command_fail_when_the_router_builds():
    class Duplicate:
        @enroute.broker.command("user.create")
        async def again(self, request):
            return None

    router = BrokerRouter([UserService, Duplicate])
    with pytest.raises(MinosRedefinedEnrouteDecoratorException, match=r"UserService\.create_user"):
        router.get_routes()


def test_routers_of_other_transports_ignore_the_broker_conflict():
    class Duplicate:
        @enroute.broker.command("user.create")
        async def again(self, request):
            return None

    assert list(RestHttpRouter([UserService, Duplicate]).routes) == [
        enroute.rest.query("/users/{user_id}", "GET")
    ]
