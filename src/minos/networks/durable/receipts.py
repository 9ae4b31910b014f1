"""Receipts: how a receiving side tells a durable publisher that a message is in, so its outbox row can go.

A durable publisher stamps each message with the ``minos-outbox`` header, whose value is its receipt
topic. Whoever acknowledges such a message to the broker (a dispatcher once the message is handled and
marked in its inbox, a subscriber once the message is received, or either when it drops a duplicate)
publishes its identifier to that topic. Receipts are batched per topic, one message per loop turn, and
are not durable themselves: a lost receipt means the outbox sends the message again later, and the
receiving side drops the copy as a duplicate and sends the receipt again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from uuid import UUID

from ..exceptions import FrameDecodeError
from ..protocol import BrokerMessageV1, BrokerMessageV1Payload, FrameCodec

__all__ = ["OUTBOX_HEADER", "RECEIPT_PREFIX", "ReceiptSender", "decode_receipt", "receipt_topic"]

logger = logging.getLogger(__name__)

OUTBOX_HEADER = "minos-outbox"
"""The header of a message sent through an outbox; its value is the topic its receipt goes to."""

RECEIPT_PREFIX = "_receipts."


def receipt_topic(origin: str) -> str:
    """The topic the outbox of ``origin`` hears its receipts on."""
    return f"{RECEIPT_PREFIX}{origin}"


def decode_receipt(codec: FrameCodec, topic: bytes, body: bytes) -> list[UUID]:
    """The identifiers a receipt carries.

    Raises:
        FrameDecodeError: when the body is not a receipt.
    """
    message = codec.decode((topic, body))
    content = message.payload.content
    if not isinstance(content, list) or not all(isinstance(item, UUID) for item in content):
        raise FrameDecodeError(f"a receipt carries a list of UUIDs, got {type(content).__name__}")
    return content


Publish = Callable[[str, bytes], None]
"""Publishes a receipt body to a topic, fire and forget (in the receiving actor's loop)."""


class ReceiptSender:
    """Collects the identifiers to confirm, per receipt topic, and publishes them once per loop turn.

    Used in one actor's loop: ``add`` is cheap, and the flush runs when the loop has finished the
    deliveries at hand (when idle, not on a timer), so a quiet system confirms at once and a busy one
    sends one receipt for many messages.

    Args:
        publish: Sends one receipt body to a topic.
    """

    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._codec = FrameCodec()
        self._pending: dict[str, list[UUID]] = {}
        self._scheduled = False
        self.sent = 0
        """Identifiers confirmed so far."""

    def add(self, message: BrokerMessageV1) -> None:
        """Confirm ``message`` to its publisher's outbox, if it came through one."""
        topic = message.payload.headers.get(OUTBOX_HEADER)
        if topic is None:
            return
        self._pending.setdefault(topic, []).append(message.identifier)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Publish what was collected, one receipt per topic."""
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for topic, identifiers in pending.items():
            try:
                body = self._codec.encode(BrokerMessageV1(topic, BrokerMessageV1Payload(identifiers)))[1]
            except Exception:  # a bad header value: the outbox resends, and we log it every time
                logger.exception("cannot send a receipt to %r", topic)
                continue
            self._publish(topic, body)
            self.sent += len(identifiers)
