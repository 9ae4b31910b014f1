"""PartitionedConnection: one link to several broker processes, each owning the topics that hash to it.

When one broker process becomes the bottleneck, run several (``minos-networks broker --bind ...`` each)
and list them all, in the same order everywhere, under ``interfaces.broker.partitions``. Every topic
belongs to exactly one of them, by a stable hash of its name (CRC-32 modulo the number of brokers), so
all publishers and subscribers of a topic meet at the same broker without any change to service code.

What partitioning keeps and what it does not: everything the contract promises per topic (groups,
UNICAST and MULTICAST, acknowledgements, redelivery, backpressure, per-publisher order on a topic)
holds, since a topic lives on one broker. There is no order across topics of different partitions,
and every process must list the same brokers in the same order (else a topic's publishers and
subscribers meet at different brokers).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable, Sequence

from .connection import Connection, DeliveryHandler, Incoming, Settle, Strategy, check_subscription

__all__ = ["PartitionedConnection", "partition_of"]

PartFactory = Callable[[DeliveryHandler, int], Connection]
"""Builds the unopened connection to one partition's broker, given its delivery handler and window."""


def partition_of(topic: str, partitions: int) -> int:
    """The partition that owns ``topic``: CRC-32 of its UTF-8 name modulo ``partitions`` (stable everywhere)."""
    return zlib.crc32(topic.encode()) % partitions


class PartitionedConnection(Connection):
    """A Connection over one connection per partition, routing each topic to the partition that owns it.

    Delivery tags are made unique across partitions (``tag * partitions + index``), so ``ack`` sends each
    acknowledgement back to the broker that delivered it. The connection is writable when every
    partition is (a conservative rule: a full partition holds back publishes to the others too).

    Args:
        parts: Builds each partition's connection; at least two make sense, one is allowed.
        on_delivery: Receives each delivered message (see ``Connection``).
        window: How many deliveries each partition may give this peer unacknowledged.
    """

    def __init__(
        self, parts: Sequence[PartFactory], *, on_delivery: DeliveryHandler | None = None, window: int = 1000
    ) -> None:
        super().__init__(on_delivery=on_delivery, window=window)
        if not parts:
            raise ValueError("a partitioned connection needs at least one partition")
        count = len(parts)
        self.parts = [make(self._deliverer(index, count), window) for index, make in enumerate(parts)]

    def __repr__(self) -> str:
        return f"<PartitionedConnection {self.parts!r}>"

    def _deliverer(self, index: int, count: int) -> DeliveryHandler:
        def deliver(incoming: Incoming) -> None:
            handler = self.on_delivery
            if handler is not None:
                handler(
                    Incoming(
                        incoming.tag * count + index, incoming.topic, incoming.body, incoming.redelivered
                    )
                )

        return deliver

    def part(self, topic: str) -> Connection:
        """The connection to the broker that owns ``topic``."""
        return self.parts[partition_of(topic, len(self.parts))]

    @property
    def connected(self) -> bool:
        return all(part.connected for part in self.parts)

    @property
    def open_timeout(self) -> float:
        return max(part.open_timeout for part in self.parts)  # the parts open side by side

    async def open(self) -> None:
        results = await asyncio.gather(*(part.open() for part in self.parts), return_exceptions=True)
        errors = [result for result in results if isinstance(result, BaseException)]
        if errors:
            await asyncio.gather(*(part.close(0) for part in self.parts), return_exceptions=True)
            raise errors[0]

    async def subscribe(self, group: str, topics: Sequence[str], *, transient: bool = False) -> None:
        check_subscription(self, group, topics)
        by_part: dict[int, list[str]] = {}
        for topic in topics:
            by_part.setdefault(partition_of(topic, len(self.parts)), []).append(topic)
        await asyncio.gather(
            *(
                self.parts[index].subscribe(group, part_topics, transient=transient)
                for index, part_topics in by_part.items()
            )
        )

    async def publish(self, topic: str, body: bytes, strategy: Strategy) -> None:
        await self.part(topic).publish(topic, body, strategy)

    def publish_nowait(self, topic: str, body: bytes, strategy: Strategy) -> asyncio.Future[None]:
        return self.part(topic).publish_nowait(topic, body, strategy)

    def publish_settled(
        self, topic: str, body: bytes, strategy: Strategy, settle: Settle, ack: int | None = None
    ) -> None:
        index = partition_of(topic, len(self.parts))
        if ack is None or ack % len(self.parts) == index:  # the delivery came through the same part
            self.parts[index].publish_settled(
                topic, body, strategy, settle, None if ack is None else ack // len(self.parts)
            )
        else:
            super().publish_settled(topic, body, strategy, settle, ack)

    @property
    def writable(self) -> bool:
        return all(part.writable for part in self.parts)

    async def wait_writable(self) -> None:
        for part in self.parts:
            await part.wait_writable()

    def ack(self, tags: Iterable[int]) -> None:
        count = len(self.parts)
        by_part: dict[int, list[int]] = {}
        for tag in tags:
            by_part.setdefault(tag % count, []).append(tag // count)
        for index, part_tags in by_part.items():
            self.parts[index].ack(part_tags)

    async def close(self, timeout: float = 5.0) -> None:
        await asyncio.gather(*(part.close(timeout) for part in self.parts))

    async def abort(self) -> None:
        """Drop every partition's link at once, as a crash would (for tests of failure handling)."""
        await asyncio.gather(*(part.abort() for part in self.parts if hasattr(part, "abort")))
