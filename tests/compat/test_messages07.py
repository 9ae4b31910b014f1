"""Item 8 of issue 17: messages and responses as minos 0.7 code uses them."""

import pytest

from minos.networks import BrokerMessageV1, BrokerMessageV1Payload, FrameCodec, Response


def test_item_8_data_is_a_deprecated_alias_of_content_on_the_message_and_its_payload():
    message = BrokerMessageV1("OrderCreated", BrokerMessageV1Payload({"id": "1"}))
    with pytest.deprecated_call(match="read `content` instead"):
        assert message.data == {"id": "1"}
    with pytest.deprecated_call(match="read `content` instead"):
        assert message.payload.data == {"id": "1"}


def test_item_8_set_reply_topic_changes_the_message_in_place_and_travels():
    message = BrokerMessageV1("GetOrder", BrokerMessageV1Payload({"id": "1"}))
    assert not message.should_reply
    message.set_reply_topic("orders.reply")
    assert (message.reply_topic, message.should_reply) == ("orders.reply", True)
    codec = FrameCodec()
    assert codec.decode(codec.encode(message)).reply_topic == "orders.reply"
    message.set_reply_topic(None)
    assert not message.should_reply
    with pytest.raises(ValueError, match="reply_topic must not be empty"):
        message.set_reply_topic("")


def test_item_8_messages_sort_by_their_content_as_0_7_sorted_them():
    messages = [BrokerMessageV1("t", BrokerMessageV1Payload(content)) for content in (3, 1, 2)]
    assert [message.content for message in sorted(messages)] == [1, 2, 3]
    assert messages[1] < messages[0]
    assert messages[0] > messages[2]
    assert messages[1] <= messages[2]
    assert not BrokerMessageV1("t", BrokerMessageV1Payload({"a": 1})) < BrokerMessageV1(
        "t", BrokerMessageV1Payload(1)
    )
    assert BrokerMessageV1Payload("a") < BrokerMessageV1Payload("b")


def test_item_8_a_response_is_hashable_and_a_status_that_is_not_an_int_is_a_value_error():
    assert len({Response("ok"), Response("ok"), Response("ok", status=201)}) == 2
    assert hash(Response({"id": "1"})) == hash(Response({"id": "1"}))  # a dict: hashable all the same
    assert repr(Response("ok")) == "Response('ok')"
    with pytest.raises(ValueError, match="a response status must be an int"):
        Response("ok", status="wrong")
