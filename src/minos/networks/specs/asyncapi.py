"""AsyncAPIService: the AsyncAPI 3.0 document of a service's broker topics, served at ``GET /spec/asyncapi``."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..enroute import BrokerEnrouteDecorator, enroute
from ..protocol.messages import BrokerMessageV1Strategy, EnrouteDecoratorKind
from ..protocol.requests import Request, Response
from .routes import RouteInfo, SpecService, collect_routes, document_info, unique_id

__all__ = ["ASYNCAPI_VERSION", "AsyncAPIService"]

ASYNCAPI_VERSION = "3.0.0"
CONTENT_TYPE = "application/msgpack"

_ENVELOPE = "BrokerMessageV1Envelope"
_ENVELOPE_REF = {"$ref": f"#/components/schemas/{_ENVELOPE}"}
_ENVELOPE_SCHEMA = {
    "type": "object",
    "description": "The fields a BrokerMessageV1 carries beside its content.",
    "properties": {
        "identifier": {"type": "string", "format": "uuid", "description": "Echoed by the reply."},
        "reply_topic": {"type": ["string", "null"], "description": "Where the sender expects the reply."},
        "strategy": {"type": "string", "enum": [strategy.value for strategy in BrokerMessageV1Strategy]},
        "status": {"type": "integer", "description": "200 for success; any other code is kept exactly."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_CORRELATION = {"location": "$message.header#/identifier", "description": "The request's identifier."}
_REPLY_ADDRESS = {
    "location": "$message.header#/reply_topic",
    "description": "The reply topic the request names.",
}
# What senders use unless a decorator says otherwise: a command or query reaches one instance of the
# service; an event reaches every subscribing service.
_DEFAULT_STRATEGY = {
    EnrouteDecoratorKind.Command: BrokerMessageV1Strategy.UNICAST,
    EnrouteDecoratorKind.Query: BrokerMessageV1Strategy.UNICAST,
    EnrouteDecoratorKind.Event: BrokerMessageV1Strategy.MULTICAST,
}


class AsyncAPIService(SpecService):
    """Describes the broker topics of the services in a Config as an AsyncAPI 3.0 document.

    Each topic is a channel (its address is the topic) with the request message, and a ``receive``
    operation on it that records the topic's kind (``command``, ``query`` or ``event``, as a tag and as
    ``x-minos-kind``), the strategy senders use (``x-minos-strategy``: ``unicast`` for commands and queries,
    ``multicast`` for events, unless the decorator has a ``strategy`` keyword argument) and its handlers.
    Commands and queries reply: their operation has a reply on a channel of its own whose address is the
    request's ``reply_topic``. Decorator keyword arguments ``summary``, ``description``, ``request_schema``
    and ``response_schema`` (JSON Schemas of the contents) refine the document.

    List it in ``services:`` to serve the document at ``GET /spec/asyncapi``.

    Args:
        config: The service's configuration; its ``services`` are described.
    """

    @enroute.rest.query("/spec/asyncapi", method="GET")
    async def generate_specification(self, request: Request) -> Response:
        """The AsyncAPI 3.0 document of this service's broker topics."""
        return self._response()

    def _build(self) -> dict[str, Any]:
        topics: dict[str, _Topic] = {}
        for route in collect_routes(self.config, (BrokerEnrouteDecorator,)):
            assert isinstance(route.decorator, BrokerEnrouteDecorator)
            topics.setdefault(route.decorator.topic, _Topic(route.decorator.topic)).routes.append(route)
        channels: dict[str, Any] = {}
        operations: dict[str, Any] = {}
        channel_ids: set[str] = set()
        operation_ids: set[str] = set()
        for topic in sorted(topics):
            entry = topics[topic]
            channel_id = unique_id(topic, channel_ids)
            channels[channel_id] = entry.channel()
            operation = entry.operation(channel_id)
            if entry.replies:
                reply_id = unique_id(f"{topic}.reply", channel_ids)
                channels[reply_id] = entry.reply_channel()
                operation["reply"] = {
                    "address": _REPLY_ADDRESS,
                    "channel": {"$ref": f"#/channels/{reply_id}"},
                    "messages": [{"$ref": f"#/channels/{reply_id}/messages/reply"}],
                }
            operations[unique_id(f"receive.{topic}", operation_ids)] = operation
        document = {
            "asyncapi": ASYNCAPI_VERSION,
            "info": document_info(self.config, "broker API"),
            "defaultContentType": CONTENT_TYPE,
            "channels": channels,
            "operations": operations,
            "components": {"schemas": {_ENVELOPE: _ENVELOPE_SCHEMA}},
        }
        return copy.deepcopy(document)  # the constants shared between messages become the document's own


@dataclass
class _Topic:
    """The routes of one topic: one command or query, or any number of events."""

    name: str
    routes: list[RouteInfo] = field(default_factory=list)

    @property
    def kind(self) -> EnrouteDecoratorKind:
        return self.routes[0].decorator.KIND

    @property
    def replies(self) -> bool:
        return self.kind is not EnrouteDecoratorKind.Event

    def _kwarg(self, key: str, default: Any) -> Any:
        return next((route.kwargs[key] for route in self.routes if key in route.kwargs), default)

    def channel(self) -> dict[str, Any]:
        kind = self.kind.name.lower()
        return {
            "address": self.name,
            "title": self.name,
            "description": f"The {kind} topic {self.name!r}.",
            "messages": {"request": _message(f"{self.name} {kind}", self._kwarg("request_schema", {}))},
        }

    def reply_channel(self) -> dict[str, Any]:
        return {
            "address": None,
            "description": f"Where the replies to {self.name!r} go: the reply topic each request names.",
            "messages": {"reply": _message(f"{self.name} reply", self._kwarg("response_schema", {}))},
        }

    def operation(self, channel_id: str) -> dict[str, Any]:
        kind = self.kind.name.lower()
        strategy = self._kwarg("strategy", _DEFAULT_STRATEGY[self.kind])
        summaries = [route.summary for route in self.routes if route.summary]
        descriptions = [route.description for route in self.routes if route.description]
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/request"}],
            "summary": " / ".join(summaries) or f"Handles the {kind} {self.name!r}.",
            "tags": [{"name": kind}],
            "x-minos-kind": kind,
            "x-minos-strategy": strategy.value if isinstance(strategy, Enum) else str(strategy),
            "x-minos-handlers": [f"{route.service.__qualname__}.{route.handler}" for route in self.routes],
        }
        if descriptions:
            operation["description"] = "\n\n".join(descriptions)
        return operation


def _message(name: str, payload: Any) -> dict[str, Any]:
    return {
        "name": name,
        "contentType": CONTENT_TYPE,
        "headers": _ENVELOPE_REF,
        "payload": payload,
        "correlationId": _CORRELATION,
    }
