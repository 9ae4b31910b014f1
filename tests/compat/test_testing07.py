"""Item 9 of issue 17: 0.7's in-memory test doubles, called as 0.7 tests call them."""

import asyncio
from uuid import uuid4

import pytest

from minos.networks import (
    REQUEST_USER_CONTEXT_VAR,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    InMemoryBrokerSubscriber,
    InMemoryRequest,
)


async def test_item_9_the_in_memory_subscriber_takes_topics_then_messages_and_add_message():
    messages = [
        BrokerMessageV1("foo", BrokerMessageV1Payload("bar")),
        BrokerMessageV1("bar", BrokerMessageV1Payload("foo")),
    ]
    async with InMemoryBrokerSubscriber({"foo"}, messages) as subscriber:
        assert subscriber.topics == {"foo"}
        later = BrokerMessageV1("foo", BrokerMessageV1Payload("later"))
        subscriber.add_message(later)
        assert [await subscriber.receive() for _ in range(3)] == [*messages, later]
        with pytest.raises(TimeoutError):  # nothing more: it waits
            await asyncio.wait_for(subscriber.receive(), 0.01)
    with pytest.raises(TypeError, match=r"the topics come first, then the messages"):
        InMemoryBrokerSubscriber(messages)


def test_item_9_an_in_memory_request_takes_its_user_from_the_context_variable_when_set():
    user, other = uuid4(), uuid4()
    assert InMemoryRequest("x", user=other).user == other
    token = REQUEST_USER_CONTEXT_VAR.set(user)
    try:
        assert InMemoryRequest("x").user == user
        with pytest.warns(RuntimeWarning, match="ignored in favour of REQUEST_USER_CONTEXT_VAR"):
            assert InMemoryRequest("x", user=other).user == user
    finally:
        REQUEST_USER_CONTEXT_VAR.reset(token)
    assert InMemoryRequest("x").user is None
