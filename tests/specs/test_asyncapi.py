"""AsyncAPIService: an AsyncAPI 3.0 document of the broker topics, valid against the vendored 3.0.0 schema."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from minos.common import Config
from minos.networks import InMemoryRequest, Response
from minos.networks.enroute import RestHttpRouter
from minos.networks.specs import AsyncAPIService

from .conftest import unresolved_refs

# @asyncapi/specs 6.11.1, schemas/3.0.0-without-$id.json (see README.md beside it)
SCHEMA = json.loads((Path(__file__).parent / "asyncapi-3.0.0.schema.json").read_text())


def schema_errors(document):
    return [
        f"{list(error.absolute_path)}: {error.message}"
        for error in Draft7Validator(SCHEMA).iter_errors(document)
    ]


def test_the_vendored_schema_is_the_asyncapi_3_0_0_schema():
    Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["properties"]["asyncapi"]["const"] == "3.0.0"


def test_the_document_validates_against_the_asyncapi_3_0_0_schema(config):
    spec = AsyncAPIService(config).spec
    assert spec["asyncapi"] == "3.0.0"
    assert schema_errors(spec) == []
    assert unresolved_refs(spec) == []
    json.dumps(spec)


def test_the_schema_check_is_not_vacuous(config):
    spec = AsyncAPIService(config).spec
    spec["operations"]["receive_user_create"]["action"] = "publish"  # AsyncAPI 2's word, gone in 3
    del spec["info"]["version"]
    errors = schema_errors(spec)
    assert errors
    assert schema_errors({"asyncapi": "2.3.0", "info": {"title": "x", "version": "1"}, "channels": {}})


def test_each_topic_is_a_channel_whose_address_is_the_topic(config):
    channels = AsyncAPIService(config).spec["channels"]
    assert {channel_id: channel["address"] for channel_id, channel in channels.items()} == {
        "audit_replay": "audit.replay",
        "audit_replay_reply": None,
        "user_create": "user.create",
        "user_create_reply": None,
        "user_created": "user.created",
        "user_get": "user.get",
        "user_get_reply": None,
    }
    assert channels["user_create"]["messages"]["request"]["name"] == "user.create command"


def test_each_operation_has_its_kind_strategy_and_handlers(config):
    operations = AsyncAPIService(config).spec["operations"]
    kinds = {
        operation_id: (operation["x-minos-kind"], operation["x-minos-strategy"], operation["tags"])
        for operation_id, operation in operations.items()
    }
    assert kinds == {
        "receive_audit_replay": ("command", "multicast", [{"name": "command"}]),  # set by the decorator
        "receive_user_create": ("command", "unicast", [{"name": "command"}]),
        "receive_user_created": ("event", "multicast", [{"name": "event"}]),
        "receive_user_get": ("query", "unicast", [{"name": "query"}]),
    }
    created = operations["receive_user_created"]
    assert created["action"] == "receive"
    assert created["channel"] == {"$ref": "#/channels/user_created"}
    assert created["x-minos-handlers"] == ["UserService.on_created", "AuditService.audit"]
    assert created["summary"] == "A user was created. / Writes the audit trail."  # one per handler
    assert "description" not in created
    assert operations["receive_user_create"]["description"] == "The name must be unique."


def test_commands_and_queries_reply_on_the_reply_topic_of_the_request_and_events_do_not(config):
    spec = AsyncAPIService(config).spec
    operations = spec["operations"]
    assert operations["receive_user_create"]["reply"] == {
        "address": {
            "location": "$message.header#/reply_topic",
            "description": "The reply topic the request names.",
        },
        "channel": {"$ref": "#/channels/user_create_reply"},
        "messages": [{"$ref": "#/channels/user_create_reply/messages/reply"}],
    }
    assert "reply" in operations["receive_user_get"]
    assert "reply" not in operations["receive_user_created"]
    reply = spec["channels"]["user_create_reply"]["messages"]["reply"]
    assert reply["payload"] == {"type": "object"}  # the decorator's response_schema
    assert reply["correlationId"]["location"] == "$message.header#/identifier"


def test_rest_and_periodic_routes_are_not_in_the_document(config):
    spec = AsyncAPIService(config).spec
    addresses = {channel["address"] for channel in spec["channels"].values()}
    assert not any(address and address.startswith("/") for address in addresses)
    assert len(spec["operations"]) == 4


def test_topics_that_make_the_same_id_get_distinct_ids():
    class Clash:
        from minos.networks import enroute

        @enroute.broker.event("a.b")
        async def one(self, request): ...

        @enroute.broker.event("a_b")
        async def two(self, request): ...

    spec = AsyncAPIService(Config({"name": "clash", "services": [Clash]})).spec
    assert {key: channel["address"] for key, channel in spec["channels"].items()} == {
        "a_b": "a.b",
        "a_b_2": "a_b",
    }
    assert schema_errors(spec) == []


def test_a_service_without_broker_routes_gives_a_valid_empty_document():
    spec = AsyncAPIService(Config({"name": "quiet"})).spec
    assert spec["channels"] == {}
    assert spec["operations"] == {}
    assert schema_errors(spec) == []


@pytest.mark.parametrize("path", ["/spec/asyncapi"])
async def test_the_document_is_served_at_get_spec_asyncapi(config, path):
    routes = RestHttpRouter.from_config(config).routes
    (decorator,) = [route for route in routes if route.url == path]
    assert decorator.method == "GET"
    response = await routes[decorator](InMemoryRequest())
    assert isinstance(response, Response)
    assert response.status == 200
    assert await response.content() == AsyncAPIService(config).spec
