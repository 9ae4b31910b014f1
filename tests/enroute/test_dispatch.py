"""Broker dispatch: topic to handler, the request context around the call, the reply of each outcome."""

import asyncio
import logging
from uuid import UUID, uuid4

import pytest

from minos.common import Config
from minos.networks.enroute import (
    BrokerDispatcher,
    BrokerRequest,
    BrokerResponse,
    BrokerResponseException,
    BrokerRouter,
    enroute,
)
from minos.networks.exceptions import (
    MinosActionNotFoundException,
    MinosRedefinedEnrouteDecoratorException,
    RequestException,
    ResponseException,
)
from minos.networks.protocol import (
    REQUEST_HEADERS_CONTEXT_VAR,
    REQUEST_USER_CONTEXT_VAR,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerMessageV1Status,
    Response,
)

USER = UUID("8f7a1f4e-2c1b-4d5e-9a6b-0c1d2e3f4a5b")


def _message(topic="user.create", content=None, headers=None, reply_topic="replies"):
    return BrokerMessageV1(topic, BrokerMessageV1Payload(content, headers), reply_topic=reply_topic)


# -- the request -----------------------------------------------------------------------------------------


async def test_a_broker_request_exposes_the_message_content_user_headers_and_reply_topic():
    message = _message(content={"name": "Ann"}, headers={"user": str(USER), "trace": "t1"})
    request = BrokerRequest(message)
    assert request.raw is message
    assert request.user == USER
    assert request.headers == {"user": str(USER), "trace": "t1"}
    assert request.reply_topic == "replies"
    assert request.has_content
    assert await request.content() == {"name": "Ann"}
    assert not request.has_params
    assert request == BrokerRequest(message)
    assert repr(request) == f"BrokerRequest({message!r})"


def test_a_broker_request_copies_the_headers_so_the_message_is_left_as_it_was():
    message = _message(headers={"a": "1"})
    request = BrokerRequest(message)
    request.headers["b"] = "2"
    assert message.headers == {"a": "1"}


def test_a_broker_request_without_content_or_user_says_so():
    request = BrokerRequest(_message(reply_topic=None))
    assert not request.has_content
    assert request.user is None
    assert request.reply_topic is None


def test_a_broker_request_refuses_a_user_header_that_is_not_a_uuid():
    with pytest.raises(RequestException, match=r"the 'user' header must be a UUID .* got 'bob'"):
        BrokerRequest(_message(headers={"user": "bob"}))


def test_broker_responses_and_response_exceptions_are_the_generic_ones():
    assert BrokerResponse("x", status=201).status == 201
    assert isinstance(BrokerResponseException("no"), ResponseException)
    assert BrokerResponseException("no").status == 400


# -- finding the action ----------------------------------------------------------------------------------


def test_get_action_returns_the_action_of_a_topic():
    async def action(request):
        return None

    assert BrokerDispatcher({"a": action}).get_action("a") is action


def test_get_action_of_an_unknown_topic_names_it_and_the_known_topics():
    async def action(request):
        return None

    dispatcher = BrokerDispatcher({"b": action, "a": action})
    with pytest.raises(MinosActionNotFoundException) as caught:
        dispatcher.get_action("c")
    assert "no handler for topic 'c'; the known topics are ['a', 'b']" in str(caught.value)
    assert dispatcher.topics == ["a", "b"]


async def test_a_dispatcher_is_built_from_broker_routes():
    class Service:
        @enroute.broker.command("user.create")
        async def create(self, request):
            return Response("created", status=201)

    dispatcher = BrokerDispatcher.from_routes(BrokerRouter([Service]).routes)
    assert dispatcher.topics == ["user.create"]
    assert set(dispatcher.actions) == {"user.create"}
    reply = await dispatcher.dispatch(_message())
    assert (reply.content, reply.status) == ("created", 201)


async def test_a_dispatcher_is_built_from_a_config(make_module):
    name = make_module(
        """
        from minos.networks.enroute import enroute

        class Service:
            @enroute.broker.query("user.get")
            async def get(self, request):
                return None
        """
    )
    dispatcher = BrokerDispatcher.from_config(
        Config({"name": "users", "services": [f"{name}.Service"]}, environ={})
    )
    assert dispatcher.topics == ["user.get"]
    assert repr(dispatcher) == "BrokerDispatcher(topics=['user.get'])"


def test_a_dispatcher_takes_broker_routes_only_and_one_per_topic():
    async def action(request):
        return None

    with pytest.raises(
        TypeError, match=r"takes broker routes only, got RestQueryEnrouteDecorator\('/a', 'GET'\)"
    ):
        BrokerDispatcher.from_routes({enroute.rest.query("/a", "GET"): action})
    with pytest.raises(MinosRedefinedEnrouteDecoratorException, match="topic 'a' has two routes"):
        BrokerDispatcher.from_routes({enroute.broker.command("a"): action, enroute.broker.event("a"): action})


# -- the reply of each outcome ---------------------------------------------------------------------------


async def _dispatch(action, message=None):
    return await BrokerDispatcher({"user.create": action}).dispatch(message or _message())


@pytest.mark.parametrize("status", [200, 201, 404, 418, 503, 600, 799])
async def test_a_returned_response_gives_its_content_and_its_exact_status(status):
    async def handler(request):
        return Response({"id": 1}, status=status)

    reply = await _dispatch(handler)
    assert (reply.content, reply.status) == ({"id": 1}, status)


@pytest.mark.parametrize("returned", [None, "not a response", 42, {"a": 1}])
async def test_anything_else_returned_gives_no_content_and_success(returned):
    async def handler(request):
        return returned

    reply = await _dispatch(handler)
    assert (reply.content, reply.status) == (None, BrokerMessageV1Status.SUCCESS)


async def test_a_sync_handler_is_dispatched_as_well():
    def handler(request):
        return BrokerResponse("sync", status=202)

    reply = await _dispatch(handler)
    assert (reply.content, reply.status) == ("sync", 202)


@pytest.mark.parametrize(
    ("exception", "status"),
    [
        (ResponseException("user 'ann' exists", status=409), 409),
        (BrokerResponseException("user 'ann' exists"), 400),
        (ResponseException("teapot", status=418), 418),
    ],
)
async def test_a_raised_response_exception_gives_its_exact_status_and_its_message(exception, status):
    async def handler(request):
        raise exception

    reply = await _dispatch(handler)
    assert (reply.content, reply.status) == (exception.message, status)


async def test_an_unsatisfied_checker_gives_400_with_a_message_naming_the_checker():
    class Service:
        @enroute.broker.command("user.create")
        async def create(self, request):
            return Response("created")

        @create.check(max_attempts=2, delay=0)
        def is_admin(self, request):
            return False

    dispatcher = BrokerDispatcher.from_routes(BrokerRouter([Service]).routes)
    reply = await dispatcher.dispatch(_message())
    assert reply.status == BrokerMessageV1Status.ERROR
    assert "checker '" in reply.content
    assert "Service.is_admin' was not satisfied after 2 attempt(s)" in reply.content


async def test_an_unknown_topic_gives_400_naming_the_topic_and_the_known_topics():
    async def handler(request):
        return None

    reply = await BrokerDispatcher({"b": handler, "a": handler}).dispatch(
        _message("user.delete", headers={"x": "1"})
    )
    assert reply.status == BrokerMessageV1Status.ERROR
    assert reply.content.startswith("no handler for topic 'user.delete'; the known topics are ['a', 'b']")
    assert reply.headers == {"x": "1"}


async def test_an_invalid_user_header_gives_400_without_running_the_handler():
    calls = []

    async def handler(request):
        calls.append(request)

    reply = await _dispatch(handler, _message(headers={"user": "not-a-uuid"}))
    assert reply.status == BrokerMessageV1Status.ERROR
    assert "the 'user' header must be a UUID" in reply.content
    assert "'not-a-uuid'" in reply.content
    assert calls == []


async def test_any_other_error_gives_500_naming_the_handler_and_the_type_but_no_internals(caplog):
    async def create_user(request):
        raise ValueError("password=hunter2 in /srv/secret.py")

    with caplog.at_level(logging.ERROR, logger="minos.networks.enroute.dispatch"):
        reply = await _dispatch(create_user)

    assert reply.status == BrokerMessageV1Status.SYSTEM_ERROR
    qualname = (
        "test_any_other_error_gives_500_naming_the_handler_and_the_type_but_no_internals.<locals>.create_user"
    )
    assert reply.content == (
        f"Internal error in handler '{__name__}.{qualname}' while handling 'user.create': ValueError"
    )
    assert "hunter2" not in reply.content
    assert "Traceback" not in reply.content
    assert "Traceback" in caplog.text
    assert "hunter2" in caplog.text  # the full story goes to the log, for the operator


async def test_a_routed_handler_is_named_by_its_class_in_an_internal_error():
    class Service:
        @enroute.broker.command("user.create")
        async def create(self, request):
            raise RuntimeError

        def _pre_command_handle(self, request):
            return request

    dispatcher = BrokerDispatcher.from_routes(BrokerRouter([Service]).routes)
    reply = await dispatcher.dispatch(_message())
    assert "Service.create' while handling 'user.create': RuntimeError" in reply.content


async def test_cancellation_is_not_turned_into_a_reply():
    async def handler(request):
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await _dispatch(handler)


# -- the request context ---------------------------------------------------------------------------------


async def test_user_and_headers_are_set_for_the_call_and_reset_after_it():
    seen = {}

    async def handler(request):
        seen["user"] = REQUEST_USER_CONTEXT_VAR.get()
        seen["headers"] = dict(REQUEST_HEADERS_CONTEXT_VAR.get())
        return None

    reply = await _dispatch(handler, _message(headers={"user": str(USER), "trace": "t1"}))
    assert reply.ok
    assert seen == {"user": USER, "headers": {"user": str(USER), "trace": "t1"}}
    assert REQUEST_USER_CONTEXT_VAR.get() is None
    assert REQUEST_HEADERS_CONTEXT_VAR.get() is None


async def test_the_context_is_reset_after_a_handler_that_raises():
    async def handler(request):
        assert REQUEST_USER_CONTEXT_VAR.get() == USER
        raise RuntimeError("boom")

    outer_user = uuid4()
    token = REQUEST_USER_CONTEXT_VAR.set(outer_user)
    try:
        reply = await _dispatch(handler, _message(headers={"user": str(USER)}))
        assert reply.status == BrokerMessageV1Status.SYSTEM_ERROR
        assert REQUEST_USER_CONTEXT_VAR.get() == outer_user
        assert REQUEST_HEADERS_CONTEXT_VAR.get() is None
    finally:
        REQUEST_USER_CONTEXT_VAR.reset(token)


async def test_headers_changed_by_the_handler_travel_back_in_the_reply_and_the_message_is_untouched():
    async def handler(request):
        REQUEST_HEADERS_CONTEXT_VAR.get()["created-by"] = "users"
        raise ResponseException("conflict", status=409)

    message = _message(headers={"trace": "t1"})
    reply = await _dispatch(handler, message)
    assert (reply.status, reply.headers) == (409, {"trace": "t1", "created-by": "users"})
    assert message.headers == {"trace": "t1"}


async def test_headers_replaced_by_the_handler_travel_back_too():
    async def handler(request):
        REQUEST_HEADERS_CONTEXT_VAR.set({"only": "this"})

    reply = await _dispatch(handler, _message(headers={"trace": "t1"}))
    assert reply.headers == {"only": "this"}
    assert REQUEST_HEADERS_CONTEXT_VAR.get() is None


async def test_a_reply_the_handler_made_invalid_gives_500_with_the_original_headers(caplog):
    async def handler(request):
        REQUEST_HEADERS_CONTEXT_VAR.get()["count"] = 3

    with caplog.at_level(logging.ERROR, logger="minos.networks.enroute.dispatch"):
        reply = await _dispatch(handler, _message(headers={"trace": "t1"}))
    assert reply.status == BrokerMessageV1Status.SYSTEM_ERROR
    assert "invalid reply (headers must be a dict of str to str" in reply.content
    assert reply.headers == {"trace": "t1"}
    assert "returned an invalid reply" in caplog.text


async def test_concurrent_dispatches_each_see_their_own_context():
    release = asyncio.Event()
    seen = []

    async def handler(request):
        await release.wait()
        seen.append((REQUEST_USER_CONTEXT_VAR.get(), await request.content()))
        return Response(REQUEST_USER_CONTEXT_VAR.get())

    dispatcher = BrokerDispatcher({"user.create": handler})
    users = [uuid4() for _ in range(3)]
    tasks = [
        asyncio.create_task(dispatcher.dispatch(_message(content=i, headers={"user": str(user)})))
        for i, user in enumerate(users)
    ]
    release.set()
    replies = await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert [reply.content for reply in replies] == users
    assert sorted(seen, key=lambda item: item[1]) == [(user, i) for i, user in enumerate(users)]
