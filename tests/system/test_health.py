"""SystemService: GET /system/health answers 200 with the components' states, 503 naming what fails."""

import asyncio
from datetime import UTC, datetime

import pykka
import pytest

from minos.common import Config
from minos.networks import InMemoryRequest
from minos.networks.enroute import RestHttpRouter
from minos.networks.periodic import (
    FakeClock,
    PeriodicPort,
    PeriodicTask,
    PeriodicTaskActor,
    PeriodicTaskScheduler,
)
from minos.networks.system import ComponentHealth, HealthCheck, HealthRegistry, ServiceRunner, SystemService


class Component:
    """A component with a health check the test sets."""

    def __init__(self, name: str, healthy: bool = True, detail: str = "fine") -> None:
        self.name = name
        self.state = (healthy, detail)

    def health(self):
        return self.state


class Broken:
    name = "broken"

    def health(self):
        raise RuntimeError("cannot tell")


async def check(service: SystemService):
    response = await service.check_health(InMemoryRequest())
    return response.status, await response.content()


async def test_all_components_healthy_answers_200_with_their_states():
    registry = HealthRegistry()
    registry.register(Component("broker", detail="connected to inproc://users"))
    registry.register(Component("actors", detail="5 alive"))
    status, content = await check(SystemService(registry=registry))
    assert status == 200
    assert content["status"] == "ok"
    assert content["components"] == {
        "actors": {"healthy": True, "detail": "5 alive"},
        "broker": {"healthy": True, "detail": "connected to inproc://users"},
    }
    assert "failing" not in content
    assert isinstance(content["host"], str)
    assert content["host"]


async def test_a_failing_component_answers_503_naming_it():
    registry = HealthRegistry()
    registry.register(Component("broker", healthy=False, detail="broker lost 3 s ago"))
    registry.register(Component("actors"))
    status, content = await check(SystemService(registry=registry))
    assert status == 503
    assert content["status"] == "failing"
    assert content["failing"] == ["broker"]
    assert content["components"]["broker"] == {"healthy": False, "detail": "broker lost 3 s ago"}


async def test_a_health_check_that_raises_counts_as_failing():
    registry = HealthRegistry()
    registry.register(Broken())
    status, content = await check(SystemService(registry=registry))
    assert status == 503
    assert content["components"]["broken"] == {
        "healthy": False,
        "detail": "its health check raised RuntimeError('cannot tell')",
    }


async def test_nothing_registered_is_healthy():
    status, content = await check(SystemService(registry=HealthRegistry()))
    assert (status, content["status"], content["components"]) == (200, "ok", {})


async def test_the_periodic_port_is_reported_and_a_dead_task_actor_makes_the_service_unhealthy():
    clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC), autojump=False)
    registry = HealthRegistry()
    task = PeriodicTask("@daily", print, clock=clock, sleep=clock.sleep, name="daily")
    service = SystemService(registry=registry)
    async with PeriodicPort(PeriodicTaskScheduler([task], name="health"), health=registry):
        status, content = await check(service)
        assert status == 200
        assert content["components"]["periodic"]["healthy"]
        # the task's actor dies (stopped under its supervisor's feet): the port says so
        (actor,) = pykka.ActorRegistry.get_by_class(PeriodicTaskActor)
        await asyncio.to_thread(actor.stop)
        status, content = await check(service)
        assert status == 503
        assert content["failing"] == ["periodic"]
        assert content["components"]["periodic"]["detail"] == "periodic tasks not running: daily"
    status, content = await check(service)
    assert (status, content["components"]) == (200, {})


async def test_the_service_listed_in_services_serves_get_system_health_from_the_runners_registry():
    config = Config(
        {
            "name": "users",
            "interfaces": {"http": {"host": "127.0.0.1", "port": 0}},
            "services": ["minos.networks.SystemService"],
        }
    )
    runner = ServiceRunner.from_config(config)
    runner.health.register(Component("listed"))
    assert runner.http is not None
    routes = runner.http.connector.adapter.routes
    ((decorator, action),) = routes.items()
    assert (decorator.url, decorator.method) == ("/system/health", "GET")
    response = await action(InMemoryRequest())
    content = await response.content()
    assert content["components"] == {"listed": {"healthy": True, "detail": "fine"}}


async def test_the_service_listed_in_services_and_built_by_a_router_alone_reports_no_components():
    routes = RestHttpRouter.from_config(Config({"name": "users", "services": [SystemService]})).routes
    ((decorator, action),) = routes.items()
    assert (decorator.url, decorator.method) == ("/system/health", "GET")
    response = await action(InMemoryRequest())
    assert response.status == 200
    assert (await response.content())["components"] == {}


def test_the_registry_refuses_two_checks_of_one_name_and_takes_a_check_again_quietly():
    registry = HealthRegistry()
    first = Component("broker")
    registry.register(first)
    registry.register(first)
    with pytest.raises(ValueError, match="'broker' is already registered"):
        registry.register(Component("broker"))
    registry.register(Component("other"), name="broker-2")
    assert list(registry.checks()) == ["broker", "broker-2"]
    registry.unregister(first)
    registry.unregister(first)
    assert list(registry.checks()) == ["broker-2"]


def test_a_component_with_a_name_and_a_health_method_is_a_health_check():
    assert isinstance(Component("x"), HealthCheck)
    assert not isinstance(object(), HealthCheck)
    assert ComponentHealth(True, "fine") == (True, "fine")
