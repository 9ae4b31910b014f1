"""The pure core: messages, frames, requests and responses; no sockets, threads or event loops."""

from .frames import DEFAULT_MAX_FRAME_SIZE, FrameCodec, decode_message, encode_message
from .messages import (
    BrokerMessage,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerMessageV1Status,
    BrokerMessageV1Strategy,
    EnrouteDecoratorKind,
)
from .requests import (
    REQUEST_HEADERS_CONTEXT_VAR,
    REQUEST_REPLY_TOPIC_CONTEXT_VAR,
    REQUEST_USER_CONTEXT_VAR,
    InMemoryRequest,
    Request,
    Response,
    WrappedRequest,
)

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "REQUEST_HEADERS_CONTEXT_VAR",
    "REQUEST_REPLY_TOPIC_CONTEXT_VAR",
    "REQUEST_USER_CONTEXT_VAR",
    "BrokerMessage",
    "BrokerMessageV1",
    "BrokerMessageV1Payload",
    "BrokerMessageV1Status",
    "BrokerMessageV1Strategy",
    "EnrouteDecoratorKind",
    "FrameCodec",
    "InMemoryRequest",
    "Request",
    "Response",
    "WrappedRequest",
    "decode_message",
    "encode_message",
]
