"""Two broker processes sharing the topics: a service reaches both through config alone (issue #8)."""

import asyncio

from minos.common import Config
from minos.networks import (
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerPort,
    BrokerPublisher,
    Request,
    enroute,
)
from minos.networks.transports import partition_of

from .conftest import HEARTBEAT

HANDLED: list[tuple[str, int]] = []
ARRIVED = asyncio.Event()
COUNT = 200  # messages per topic


class SplitService:
    @enroute.broker.event("split.one")
    @enroute.broker.event("split.two")
    async def record(self, request: Request) -> None:
        HANDLED.append((request.raw.topic, await request.content()))  # type: ignore[attr-defined]
        if len(HANDLED) == 2 * COUNT:
            ARRIVED.set()


async def test_a_service_spreads_its_topics_over_two_broker_processes_by_configuration_only(
    processes, short_dir
):
    assert partition_of("split.one", 2) != partition_of("split.two", 2)  # the test needs one topic on each
    brokers = [
        processes.start_broker(f"ipc://{short_dir / f'part-{index}.sock'}", f"broker-{index}")
        for index in (0, 1)
    ]
    config = Config(
        {
            "name": "split",
            "interfaces": {
                "broker": {
                    "partitions": [broker.endpoint for broker in brokers],
                    "heartbeat_interval": HEARTBEAT,
                    "close_timeout": 2.0,
                }
            },
            "services": [SplitService],
        }
    )
    HANDLED.clear()
    ARRIVED.clear()
    async with BrokerPort.from_config(config), BrokerPublisher.from_config(config) as publisher:
        for index in range(COUNT):
            await publisher.send(BrokerMessageV1("split.one", BrokerMessageV1Payload(index)))
            await publisher.send(BrokerMessageV1("split.two", BrokerMessageV1Payload(index)))
        await asyncio.wait_for(ARRIVED.wait(), 20)
    stats = [broker.stop() for broker in brokers]
    assert sorted(HANDLED) == sorted(
        (topic, index) for topic in ("split.one", "split.two") for index in range(COUNT)
    )
    owner = {topic: partition_of(topic, 2) for topic in ("split.one", "split.two")}
    assert [entry["published"] for entry in stats] == [COUNT, COUNT], (owner, stats)
    assert all(entry["held"] == 0 for entry in stats)
