"""BrokerMessageV1, its payload, and the status, strategy and handler-kind enums."""

import dataclasses
from http import HTTPStatus
from uuid import UUID, uuid4

import pytest

from minos.networks.protocol import (
    BrokerMessage,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerMessageV1Status,
    BrokerMessageV1Strategy,
    EnrouteDecoratorKind,
)

# --- the payload -------------------------------------------------------------------------------


def test_an_empty_payload_has_no_content_no_headers_and_a_success_status():
    payload = BrokerMessageV1Payload()
    assert payload.content is None
    assert payload.headers == {}
    assert payload.status is BrokerMessageV1Status.SUCCESS
    assert payload.ok


def test_two_empty_payloads_do_not_share_their_headers():
    first, second = BrokerMessageV1Payload(), BrokerMessageV1Payload()
    first.headers["user"] = "ada"
    assert second.headers == {}


@pytest.mark.parametrize("status", list(BrokerMessageV1Status))
def test_a_well_known_status_comes_back_as_its_enum_member(status):
    assert BrokerMessageV1Payload(status=int(status)).status is status


@pytest.mark.parametrize("status", [404, 201, 0, -1, 599, 601, 10**30])
def test_a_status_outside_the_enum_is_kept_exactly(status):
    payload = BrokerMessageV1Payload(status=status)
    assert payload.status == status
    assert type(payload.status) is int


def test_a_404_is_kept_as_404_and_not_collapsed_to_unknown():
    payload = BrokerMessageV1Payload(status=404)
    assert payload.status == 404
    assert payload.status != BrokerMessageV1Status.UNKNOWN


def test_a_status_from_another_int_enum_is_normalised_by_its_value():
    assert BrokerMessageV1Payload(status=HTTPStatus.OK).status is BrokerMessageV1Status.SUCCESS
    not_found = BrokerMessageV1Payload(status=HTTPStatus.NOT_FOUND).status
    assert not_found == 404
    assert type(not_found) is int


@pytest.mark.parametrize(("status", "ok"), [(200, True), (201, True), (299, True), (300, False), (199, False), (404, False), (500, False)])  # fmt: skip
def test_ok_means_a_2xx_status(status, ok):
    assert BrokerMessageV1Payload(status=status).ok is ok


@pytest.mark.parametrize("status", [True, False, "200", 200.0, None])
def test_a_status_that_is_not_an_int_is_a_type_error_showing_it(status):
    with pytest.raises(TypeError, match=rf"a status must be an int such as 200 or 404, got {status!r}"):
        BrokerMessageV1Payload(status=status)


@pytest.mark.parametrize("headers", [{"user": 1}, {1: "ada"}, [("user", "ada")], "user=ada"])
def test_headers_that_are_not_a_dict_of_str_to_str_are_a_type_error_showing_them(headers):
    with pytest.raises(TypeError, match=r"headers must be a dict of str to str, got "):
        BrokerMessageV1Payload(headers=headers)


def test_a_payload_keeps_any_content_as_given():
    content = {"items": [1, 2], "note": None}
    assert BrokerMessageV1Payload(content).content is content


# --- the message -------------------------------------------------------------------------------


def test_a_message_has_a_fresh_uuid4_an_empty_payload_unicast_and_no_reply_topic_by_default():
    message = BrokerMessageV1("order.created")
    assert isinstance(message.identifier, UUID)
    assert message.identifier.version == 4
    assert message.payload == BrokerMessageV1Payload()
    assert message.strategy is BrokerMessageV1Strategy.UNICAST
    assert message.reply_topic is None
    assert message.version == BrokerMessageV1.version == 1


def test_two_default_messages_get_different_identifiers():
    assert BrokerMessageV1("a").identifier != BrokerMessageV1("a").identifier


def test_a_message_reads_content_headers_status_and_ok_from_its_payload():
    payload = BrokerMessageV1Payload({"id": 7}, {"user": "ada"}, 404)
    message = BrokerMessageV1("order.get", payload)
    assert message.content == {"id": 7}
    assert message.headers == {"user": "ada"}
    assert message.status == 404
    assert message.ok is False


def test_a_message_should_reply_only_when_it_has_a_reply_topic():
    assert not BrokerMessageV1("order.get").should_reply
    assert BrokerMessageV1("order.get", reply_topic="order.get.reply").should_reply


def test_with_reply_topic_returns_a_copy_with_only_the_reply_topic_changed():
    original = BrokerMessageV1(
        "order.get",
        BrokerMessageV1Payload({"id": 7}),
        strategy=BrokerMessageV1Strategy.MULTICAST,
    )
    copy = original.with_reply_topic("order.get.reply")
    assert copy.reply_topic == "order.get.reply"
    assert original.reply_topic is None
    assert (copy.topic, copy.payload, copy.identifier, copy.strategy) == (
        original.topic,
        original.payload,
        original.identifier,
        original.strategy,
    )
    assert copy.with_reply_topic(None) == original


def test_dataclasses_replace_derives_a_message_too():
    original = BrokerMessageV1("order.get")
    assert dataclasses.replace(original, topic="order.list").topic == "order.list"


def test_messages_with_equal_fields_are_equal_and_hash_alike():
    identifier = uuid4()
    first = BrokerMessageV1("a", BrokerMessageV1Payload({"x": [1]}, {"user": "ada"}), identifier=identifier)
    second = BrokerMessageV1("a", BrokerMessageV1Payload({"x": [1]}, {"user": "ada"}), identifier=identifier)
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"topic": "b"},
        {"payload": BrokerMessageV1Payload(1)},
        {"identifier": UUID(int=1)},
        {"strategy": BrokerMessageV1Strategy.MULTICAST},
        {"reply_topic": "a.reply"},
    ],
)
def test_messages_that_differ_in_any_field_are_not_equal(change):
    message = BrokerMessageV1("a", identifier=UUID(int=0))
    assert dataclasses.replace(message, **change) != message


def test_a_message_is_hashable_even_when_its_content_is_not():
    assert isinstance(hash(BrokerMessageV1("a", BrokerMessageV1Payload({"a": [1]}))), int)


def test_a_message_and_its_payload_are_immutable():
    message = BrokerMessageV1("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.topic = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.payload.status = 500  # type: ignore[misc]


def test_a_message_is_a_broker_message():
    assert isinstance(BrokerMessageV1("a"), BrokerMessage)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"topic": 1}, TypeError, "topic must be a str such as 'user.created', got 1"),
        ({"topic": ""}, ValueError, "topic must not be empty"),
        ({"topic": "a", "reply_topic": b"r"}, TypeError, "reply_topic must be a str such as 'user.created', got b'r'"),
        ({"topic": "a", "reply_topic": ""}, ValueError, "reply_topic must not be empty"),
        ({"topic": "a", "payload": {"a": 1}}, TypeError, "payload must be a BrokerMessageV1Payload, got {'a': 1}"),
        ({"topic": "a", "identifier": "x"}, TypeError, "identifier must be a uuid.UUID, got 'x'"),
        ({"topic": "a", "strategy": "unicast"}, TypeError, "strategy must be a BrokerMessageV1Strategy, got 'unicast'"),
    ],
)  # fmt: skip
def test_a_message_with_a_wrong_field_is_an_error_naming_the_field_and_the_value(kwargs, error, text):
    with pytest.raises(error) as caught:
        BrokerMessageV1(**kwargs)
    assert type(caught.value) is error
    assert str(caught.value) == text


# --- the enums ---------------------------------------------------------------------------------


def test_the_well_known_statuses_have_their_minos_codes():
    assert [int(status) for status in BrokerMessageV1Status] == [200, 400, 500, 600]
    success: int = BrokerMessageV1Status.SUCCESS
    assert success == 200  # an IntEnum: equal to its plain code


def test_the_strategies_are_unicast_and_multicast():
    assert [strategy.value for strategy in BrokerMessageV1Strategy] == ["unicast", "multicast"]


@pytest.mark.parametrize(
    ("kind", "pre", "post"),
    [
        (EnrouteDecoratorKind.Command, "_pre_command_handle", "_post_command_handle"),
        (EnrouteDecoratorKind.Query, "_pre_query_handle", "_post_query_handle"),
        (EnrouteDecoratorKind.Event, "_pre_event_handle", "_post_event_handle"),
    ],
)
def test_each_handler_kind_names_its_pre_and_post_hooks(kind, pre, post):
    assert kind.pre_fn_name == pre
    assert kind.post_fn_name == post
