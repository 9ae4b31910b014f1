"""The ``codec`` scenario: FrameCodec against plain msgpack on the same typical small message."""

from __future__ import annotations

import uuid
from typing import Any

import msgpack

from benchmarks import Result, best_rate
from minos.networks.protocol import (
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerMessageV1Strategy,
    FrameCodec,
)

__all__ = ["run", "typical_message"]

CEILING = "msgpack.packb/unpackb of an equivalent plain dict"


def typical_message() -> BrokerMessageV1:
    """An order-created event as a service would send it: six fields, a user header, a reply topic."""
    user = uuid.UUID("5c3b8f8e-3f8a-4b7e-9d8e-2c1f0a9b7d6e")
    content = {
        "order_id": uuid.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"),
        "customer": "Ada Lovelace",
        "quantity": 3,
        "amount": 129.95,
        "currency": "EUR",
        "paid": True,
    }
    return BrokerMessageV1(
        "order.created",
        BrokerMessageV1Payload(content, {"user": str(user)}),
        identifier=uuid.UUID("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"),
        strategy=BrokerMessageV1Strategy.UNICAST,
        reply_topic="order.created.reply",
    )


def plain_equivalent(message: BrokerMessageV1) -> dict[str, Any]:
    """The same message as a dict plain msgpack can write: UUIDs as str, enums as their values."""
    return {
        "topic": message.topic,
        "version": 1,
        "identifier": str(message.identifier),
        "strategy": message.strategy.value,
        "reply_topic": message.reply_topic,
        "status": int(message.status),
        "headers": dict(message.headers),
        "content": {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in message.content.items()},
    }


def run(quick: bool) -> list[Result]:
    """Measure encode, decode and both, each next to plain msgpack doing the same."""
    messages = 20_000 if quick else 200_000
    repetitions = 3 if quick else 7
    codec = FrameCodec()
    message = typical_message()
    frames = codec.encode(message)
    assert codec.decode(frames) == message
    plain = plain_equivalent(message)
    packed = msgpack.packb(plain)
    assert msgpack.unpackb(packed) == plain
    encode, decode = codec.encode, codec.decode
    packb, unpackb = msgpack.packb, msgpack.unpackb

    def codec_both(n: int) -> None:
        for _ in range(n):
            decode(encode(message))

    def plain_both(n: int) -> None:
        for _ in range(n):
            unpackb(packb(plain))

    def codec_encode(n: int) -> None:
        for _ in range(n):
            encode(message)

    def plain_encode(n: int) -> None:
        for _ in range(n):
            packb(plain)

    def codec_decode(n: int) -> None:
        for _ in range(n):
            decode(frames)

    def plain_decode(n: int) -> None:
        for _ in range(n):
            unpackb(packed)

    results = []
    for path, measured, ceiling in [
        ("encode+decode", codec_both, plain_both),
        ("encode", codec_encode, plain_encode),
        ("decode", codec_decode, plain_decode),
    ]:
        # Interleave the two so that a noisy neighbour hurts both alike.
        _ceiling_seconds, ceiling_rate = best_rate(ceiling, messages, repetitions)
        seconds, rate = best_rate(measured, messages, repetitions)
        results.append(
            Result(
                scenario="codec",
                path=path,
                messages=messages,
                seconds=seconds,
                msgs_per_s=rate,
                ceiling_msgs_per_s=ceiling_rate,
                ratio=rate / ceiling_rate,
                ceiling=CEILING,
            )
        )
    return results
