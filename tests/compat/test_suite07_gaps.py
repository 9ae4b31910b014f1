"""Behaviour minos-microservice-networks 0.7's own test suite asserts of the public API, and that a 0.7 user
can meet: each test names what 0.7 did that we now do too."""

from datetime import timedelta
from unittest.mock import AsyncMock, MagicMock

import pytest

from minos.networks import (
    BrokerPublisher,
    BrokerSubscriber,
    CheckerMeta,
    CheckerWrapper,
    HandlerMeta,
    HandlerWrapper,
    HttpResponse,
    InMemoryBrokerPublisher,
    InMemoryBrokerSubscriber,
    InMemoryDiscoveryClient,
    InMemoryRequest,
    NotSatisfiedCheckerException,
    Request,
    Response,
    ResponseException,
    WrappedRequest,
    enroute,
)


def _is_positive(request: Request) -> bool:
    return request.has_content


async def _is_async(request: Request) -> bool:
    return bool(await request.content())


def _handle(request: Request) -> Response:
    return Response("sync")


async def _handle_async(request: Request) -> Response:
    return Response(f"async {await request.content()}")


# HandlerMeta and CheckerMeta compare, hash and unpack as 0.7's did.


def test_checker_meta_is_equal_by_function_attempts_and_delay() -> None:
    meta = CheckerMeta(_is_positive, 3, 0.05)
    assert meta == CheckerMeta(_is_positive, 3, 0.05)
    assert meta != CheckerMeta(_is_async, 3, 0.05)
    assert meta != CheckerMeta(_is_positive, 2, 0.05)
    assert meta != CheckerMeta(_is_positive, 3, timedelta(seconds=1))
    assert tuple(meta) == (_is_positive, 3, 0.05)
    assert hash(meta) == hash((_is_positive, 3, 0.05))


def test_handler_meta_is_equal_by_function_routes_and_checkers() -> None:
    meta = HandlerMeta(_handle)
    assert meta == HandlerMeta(_handle)
    assert meta != HandlerMeta(_handle_async)
    assert tuple(meta) == (_handle, set(), set())
    assert hash(meta) == hash(_handle)
    decorator = enroute.broker.command("CreateFoo")
    assert HandlerMeta(_handle, {decorator}).decorators == {decorator}


def test_handler_checkers_are_a_set_kept_in_order() -> None:
    class Service:
        @enroute.broker.command("CreateFoo")
        def create(self, request: Request) -> Response:
            return Response(None)

        @create.check()
        def first(self, request: Request) -> bool:
            return True

        @create.check()
        def second(self, request: Request) -> bool:
            return True

    checkers = Service.create.meta.checkers  # type: ignore[attr-defined]
    assert set() == HandlerMeta(_handle).checkers  # as 0.7's empty set
    assert checkers == {Service.first.meta, Service.second.meta}  # type: ignore[attr-defined]
    assert [checker.func for checker in checkers] == [Service.first, Service.second]
    assert checkers[0].func is Service.first


# minos 0.7's wrappers: the checker or handler as a callable that runs the checks itself.


async def test_checker_wrapper_retries_and_returns_whether_satisfied() -> None:
    retried = AsyncMock(side_effect=[False, False, True])
    wrapper = CheckerMeta(retried, 3, 0).wrapper
    assert isinstance(wrapper, CheckerWrapper)
    assert await wrapper(InMemoryRequest(True)) is True
    assert retried.call_count == 3
    never = MagicMock(return_value=False)
    assert CheckerMeta(never, 2, 0).wrapper(InMemoryRequest(True)) is False
    assert never.call_count == 2
    assert await CheckerMeta(MagicMock(return_value=True), 1, 0).async_wrapper(InMemoryRequest(True)) is True


def test_sync_wrapper_of_a_coroutine_function_raises_value_error() -> None:
    with pytest.raises(ValueError, match="coroutine function"):
        CheckerMeta(_is_async, 1, 0).sync_wrapper(InMemoryRequest(True))
    with pytest.raises(ValueError, match="coroutine function"):
        HandlerMeta(_handle_async).sync_wrapper(InMemoryRequest(True))


async def test_run_async_and_run_sync_raise_when_a_checker_is_not_satisfied() -> None:
    yes, no = (
        CheckerMeta(MagicMock(return_value=True), 1, 0),
        CheckerMeta(AsyncMock(return_value=False), 2, 0),
    )
    await CheckerMeta.run_async({yes}, InMemoryRequest(True))
    with pytest.raises(NotSatisfiedCheckerException):
        await CheckerMeta.run_async([yes, no], InMemoryRequest(True))
    CheckerMeta.run_sync([yes], InMemoryRequest(True))
    with pytest.raises(NotSatisfiedCheckerException):
        CheckerMeta.run_sync([CheckerMeta(MagicMock(return_value=False), 1, 0)], InMemoryRequest(True))


async def test_handler_wrapper_runs_checkers_then_the_handler() -> None:
    meta = HandlerMeta(_handle_async)
    wrapper = meta.wrapper
    assert isinstance(wrapper, HandlerWrapper)
    assert wrapper.meta is meta
    assert await wrapper(InMemoryRequest("foo")) == Response("async foo")
    assert HandlerMeta(_handle).wrapper(InMemoryRequest("foo")) == Response("sync")

    meta.checkers.add(CheckerMeta(MagicMock(return_value=False), 1, 0))
    with pytest.raises(ResponseException) as info:
        await meta.async_wrapper(InMemoryRequest("foo"))
    assert info.value.status == 400


async def test_handler_wrapper_of_a_method_passes_self_to_its_checkers() -> None:
    class Service:
        @enroute.broker.command("CreateFoo")
        async def create(self, request: Request) -> Response:
            return Response(await request.content())

        @create.check(max_attempts=1, delay=0)
        def has_content(self, request: Request) -> bool:
            assert isinstance(self, Service)
            return request.has_content

    wrapper = Service.create.meta.wrapper  # type: ignore[attr-defined]
    assert await wrapper(Service(), InMemoryRequest("x")) == Response("x")
    with pytest.raises(ResponseException):
        await wrapper(Service(), InMemoryRequest())


# The in-memory twins count as the real publisher and subscriber; topics are a set.


def test_in_memory_twins_are_publishers_and_subscribers() -> None:
    assert issubclass(InMemoryBrokerPublisher, BrokerPublisher)
    assert isinstance(InMemoryBrokerPublisher(), BrokerPublisher)
    assert issubclass(InMemoryBrokerSubscriber, BrokerSubscriber)
    assert isinstance(InMemoryBrokerSubscriber({"foo"}), BrokerSubscriber)


def test_subscriber_topics_are_a_set() -> None:
    assert InMemoryBrokerSubscriber(["one", "two", "one"]).topics == {"one", "two"}
    subscriber = BrokerSubscriber(["b", "a", "b"], connect=MagicMock(), group="g")
    assert subscriber.topics == {"a", "b"}
    assert subscriber._subscription.topics == ("b", "a")  # the broker is told them in the order given


# Small things 0.7's tests assert of requests, responses and the discovery twin.


async def test_http_response_from_response() -> None:
    converted = HttpResponse.from_response(Response({"foo": "bar"}, status=401))
    assert (converted.content_type, await converted.content(), converted.status) == (
        "application/json",
        {"foo": "bar"},
        401,
    )
    assert (
        HttpResponse.from_response(Response("text")).content_type == "application/json"
    )  # as the port sends it
    assert HttpResponse.from_response(Response(b"raw")).content_type == "application/octet-stream"
    already = HttpResponse("x", content_type="text/html")
    assert HttpResponse.from_response(already) is already
    empty = HttpResponse.from_response(None)
    assert (empty.content_type, empty.has_content, empty.status) == ("application/json", False, 200)


def test_wrapped_request_repr_names_its_three_arguments() -> None:
    base = InMemoryRequest("hello")
    wrapped = WrappedRequest(base, str.upper, dict)
    assert repr(wrapped) == f"WrappedRequest({base!r}, {str.upper!r}, {dict!r})"


async def test_in_memory_discovery_client_subscribes_without_arguments() -> None:
    client = InMemoryDiscoveryClient("localhost", 9999)
    await client.subscribe()
    assert client.is_subscribed
    await client.unsubscribe()
    assert not client.is_subscribed


def test_check_decorator_compares_and_unpacks_as_in_07() -> None:
    meta = HandlerMeta(_handle)
    decorator = meta.check(3, timedelta(milliseconds=500))
    assert tuple(decorator) == (meta, 3, 0.5)
    assert decorator == meta.check(3, 0.5)
    assert decorator != meta.check(2, 0.5)
    assert decorator != HandlerMeta(_handle_async).check(3, 0.5)
    assert hash(decorator) == hash((meta, 3, 0.5))
    assert repr(decorator) == f"CheckDecorator({meta!r}, 3, 0.5)"
