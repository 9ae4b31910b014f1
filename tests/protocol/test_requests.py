"""Request, Response, InMemoryRequest, WrappedRequest and the request context variables."""

from uuid import uuid4

import pytest

from minos.networks import (
    REQUEST_HEADERS_CONTEXT_VAR,
    REQUEST_REPLY_TOPIC_CONTEXT_VAR,
    REQUEST_USER_CONTEXT_VAR,
    InMemoryRequest,
    NotHasContentException,
    NotHasParamsException,
    Request,
    Response,
    WrappedRequest,
)


async def test_an_in_memory_request_returns_what_it_was_built_with():
    user = uuid4()
    request = InMemoryRequest(content={"a": 1}, params={"id": "7"}, user=user)
    assert request.has_content
    assert request.has_params
    assert await request.content() == {"a": 1}
    assert await request.params() == {"id": "7"}
    assert request.user == user


async def test_an_empty_in_memory_request_says_why_it_has_no_content_or_params():
    request = InMemoryRequest()
    assert not request.has_content
    assert not request.has_params
    with pytest.raises(NotHasContentException, match="has no content; check `has_content`"):
        await request.content()
    with pytest.raises(NotHasParamsException, match="has no params; check `has_params`"):
        await request.params()


def test_in_memory_requests_compare_by_value():
    user = uuid4()
    assert InMemoryRequest("x", {"p": 1}, user) == InMemoryRequest("x", {"p": 1}, user)
    assert InMemoryRequest("x") != InMemoryRequest("y")
    assert repr(InMemoryRequest("x")) == "InMemoryRequest('x', None, None)"  # as minos 0.7 wrote it


async def test_a_wrapped_request_applies_sync_and_async_actions():
    async def double(value):
        return value * 2

    base = InMemoryRequest(content=21, params={"id": 1}, user=uuid4())
    wrapped = WrappedRequest(base, content_action=double, params_action=lambda p: {**p, "extra": True})
    assert await wrapped.content() == 42
    assert await wrapped.params() == {"id": 1, "extra": True}
    assert wrapped.user == base.user
    assert wrapped.has_content
    assert wrapped.has_params


async def test_a_wrapped_request_without_actions_passes_values_through():
    wrapped = WrappedRequest(InMemoryRequest(content="same"))
    assert await wrapped.content() == "same"
    assert not wrapped.has_params


def test_a_request_subclass_must_say_who_its_user_is():
    class Incomplete(Request):
        pass

    with pytest.raises(TypeError, match="user"):
        Incomplete()  # type: ignore[abstract]


async def test_a_response_keeps_its_content_and_exact_status():
    response = Response({"id": "1"}, status=404)
    assert response.has_content
    assert await response.content() == {"id": "1"}
    assert response.status == 404
    assert Response() == Response(None, 200)
    assert not Response().has_content
    assert Response("a") != Response("a", status=201)


def test_a_response_rejects_a_status_that_is_not_an_int():
    with pytest.raises(ValueError, match=r"must be an int such as 200 or 404, got '200'"):
        Response("x", status="200")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got True"):
        Response("x", status=True)


def test_the_context_variables_default_to_none_and_reset_cleanly():
    for var in (REQUEST_USER_CONTEXT_VAR, REQUEST_HEADERS_CONTEXT_VAR, REQUEST_REPLY_TOPIC_CONTEXT_VAR):
        assert var.get() is None
    token = REQUEST_REPLY_TOPIC_CONTEXT_VAR.set("reply.topic")
    assert REQUEST_REPLY_TOPIC_CONTEXT_VAR.get() == "reply.topic"
    REQUEST_REPLY_TOPIC_CONTEXT_VAR.reset(token)
    assert REQUEST_REPLY_TOPIC_CONTEXT_VAR.get() is None
