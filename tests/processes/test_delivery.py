"""Strategies and request/reply between real processes: a broker process, three workers, the test as client."""

import asyncio
from collections import Counter

from minos.networks import (
    BrokerClient,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerMessageV1Status,
    BrokerMessageV1Strategy,
    BrokerPublisher,
)

WAIT = 20.0  # seconds any single wait may take before the test fails
COUNT = 60  # messages per strategy test


def message(topic, content=None, **kwargs):
    return BrokerMessageV1(topic, BrokerMessageV1Payload(content), **kwargs)


async def publish(cluster, topic, count, strategy):
    """Send ``count`` messages; return the identifiers the broker accepted (each ``send`` returned)."""
    messages = [message(topic, index, strategy=strategy) for index in range(count)]
    async with BrokerPublisher.from_config(cluster.config) as publisher:
        await asyncio.wait_for(asyncio.gather(*(publisher.send(sent) for sent in messages)), WAIT)
    return {str(sent.identifier) for sent in messages}


async def test_unicast_to_a_topic_both_groups_share_reaches_exactly_one_worker_in_total(start_cluster):
    cluster = start_cluster()
    sent = await publish(cluster, cluster.shared_topic, COUNT, BrokerMessageV1Strategy.UNICAST)
    await cluster.output.wait(
        lambda: cluster.output.all_handled(sent, cluster.shared_topic),
        WAIT,
        f"every one of {COUNT} unicast messages to be handled",
    )
    cluster.stop_workers()  # after this, nothing more can be handled: the counts are final

    handled = cluster.output.snapshot(cluster.shared_topic)
    per_message = Counter(record.identifier for record in handled)
    assert set(per_message) == sent
    assert set(per_message.values()) == {1}, {i: n for i, n in per_message.items() if n != 1}
    per_worker = Counter(record.worker for record in handled)
    # Unicast picks one group per message, round robin across the groups subscribed to the topic.
    assert per_worker["a1"] + per_worker["a2"] > 0, per_worker
    assert per_worker["b1"] > 0, per_worker


async def test_multicast_reaches_exactly_one_worker_of_each_group(start_cluster):
    cluster = start_cluster()
    sent = await publish(cluster, cluster.shared_topic, COUNT, BrokerMessageV1Strategy.MULTICAST)

    def both_groups_handled_everything() -> bool:
        handled = cluster.output.snapshot(cluster.shared_topic)
        return sent <= {r.identifier for r in handled if r.worker == "b1"} and sent <= {
            r.identifier for r in handled if r.worker in ("a1", "a2")
        }

    await cluster.output.wait(
        both_groups_handled_everything, WAIT, f"{COUNT} multicasts to reach both groups"
    )
    cluster.stop_workers()

    handled = cluster.output.snapshot(cluster.shared_topic)
    group_a = Counter(r.identifier for r in handled if r.worker in ("a1", "a2"))
    group_b = Counter(r.identifier for r in handled if r.worker == "b1")
    assert set(group_a) == set(group_b) == sent
    assert set(group_a.values()) == {1}, {i: n for i, n in group_a.items() if n != 1}
    assert set(group_b.values()) == {1}, {i: n for i, n in group_b.items() if n != 1}


async def test_a_request_to_another_process_gets_its_reply_with_status_content_and_identifier(start_cluster):
    cluster = start_cluster()
    async with BrokerClient.from_config(cluster.config) as client:
        request = message(cluster.b_ask_topic, {"question": 42})
        await client.send(request)
        reply = await asyncio.wait_for(client.receive(), WAIT)
        assert reply.identifier == request.identifier
        assert reply.status == BrokerMessageV1Status.SUCCESS
        assert reply.content == {"worker": "b1", "group": cluster.group_b, "echo": {"question": 42}}

        failing = message(cluster.a_ask_topic, {"status": 404})
        await client.send(failing)
        reply = await asyncio.wait_for(client.receive(), WAIT)
        assert reply.identifier == failing.identifier
        assert reply.status == 404
        assert reply.content["group"] == cluster.group_a
        assert reply.content["worker"] in ("a1", "a2")


async def test_many_requests_in_flight_across_processes_each_get_the_reply_to_their_own_identifier(
    start_cluster,
):
    cluster = start_cluster()
    requests = {}
    for index in range(40):
        topic = cluster.a_ask_topic if index % 2 else cluster.b_ask_topic
        sent = message(topic, {"index": index})
        requests[sent.identifier] = sent
    async with BrokerClient.from_config(cluster.config) as client:
        await asyncio.gather(*(client.send(sent) for sent in requests.values()))
        replies = [reply async for reply in client.receive_many(len(requests), timeout=WAIT)]

    assert {reply.identifier for reply in replies} == set(requests)
    for reply in replies:
        request = requests[reply.identifier]
        assert reply.status == BrokerMessageV1Status.SUCCESS
        assert reply.content["echo"] == request.content
        expected = cluster.group_a if request.topic == cluster.a_ask_topic else cluster.group_b
        assert reply.content["group"] == expected
