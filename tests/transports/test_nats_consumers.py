"""NatsConsumers' pull requests, against a stand-in for nats-py: what they ask for, and when they ask again.

A server that ends a pull request without a word cannot be made on purpose (nats-server 2.9 does it in a
race: see the first test), so these tests play the server: they see every request and answer with
statuses.
"""

import time
from types import SimpleNamespace

from nats.aio.msg import Msg

from minos.networks.protocol import FrameCodec
from minos.networks.transports import NatsSettings
from minos.networks.transports.nats_consumers import NatsConsumers

PULL_API = "$JS.API.CONSUMER.MSG.NEXT."


def matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` matches the NATS subscription ``pattern`` (``*`` stands for one token)."""
    wanted, tokens = pattern.split("."), subject.split(".")
    return len(wanted) == len(tokens) and all(w in ("*", t) for w, t in zip(wanted, tokens, strict=True))


class FakeClient:
    """Stands in for nats-py's Client: records what is published, and delivers what the test sends."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, str]] = []
        self._subscriptions: list[tuple[str, object]] = []
        self._inboxes = 0

    def new_inbox(self) -> str:
        self._inboxes += 1
        return f"_INBOX.test{self._inboxes}"

    async def subscribe(self, subject, cb):
        self._subscriptions.append((subject, cb))
        return SimpleNamespace(unsubscribe=None)

    async def publish(self, subject, payload=b"", reply="", headers=None) -> None:
        self.published.append((subject, payload, reply))

    def pulls(self) -> list[tuple[str, bytes, str]]:
        """The pull requests published since the last call."""
        pulls = [sent for sent in self.published if sent[0].startswith(PULL_API)]
        self.published.clear()
        return pulls

    async def deliver(self, msg: Msg) -> None:
        for pattern, callback in self._subscriptions:
            if matches(pattern, msg.subject):
                await callback(msg)


class FakeJetStream:
    """Stands in for nats-py's JetStreamContext: every consumer is created."""

    async def add_consumer(self, stream, config) -> None:
        pass


def request_timeout(reply: str, pending: int) -> Msg:
    """The status JetStream sends when a pull request expires with ``pending`` deliveries not made."""
    headers = {"Status": "408", "Description": "Request Timeout", "Nats-Pending-Messages": str(pending)}
    return Msg(None, subject=reply, headers=headers)


async def subscribed(settings: NatsSettings) -> tuple[FakeClient, NatsConsumers]:
    """NatsConsumers of one group on one topic (two consumers: unicast and multicast), window 10."""
    owner = SimpleNamespace(window=10, on_delivery=None)
    consumers = NatsConsumers(
        owner,
        settings,
        dead_letter_topic="",
        codec=FrameCodec(),
        state=lambda: "open",
        wake=lambda: None,
        resume=lambda: None,
        publish=None,
    )
    client = FakeClient()
    await consumers.subscribe(client, FakeJetStream(), "orders", ["order.created"], transient=False)
    return client, consumers


async def test_a_pull_request_the_server_ended_without_a_word_is_renewed_soon_after_it_expired():
    """nats-server 2.9 drops an expired pull request without a 408 when a message comes for it before its
    expiry timer ran (a race, under load or after a stall). Waiting ``connect_timeout`` for that 408 left
    the consumer without deliveries for as long: here 30 s."""
    settings = NatsSettings(stream="S", pull_expires=0.5, connect_timeout=30.0)
    client, consumers = await subscribed(settings)
    before = time.monotonic()
    await consumers.send(client)
    first = client.pulls()
    assert len(first) == 2  # one per consumer
    consumers.keep_alive(before + settings.pull_expires)  # expired: its 408 may still be on its way
    await consumers.send(client)
    assert client.pulls() == []
    consumers.keep_alive(time.monotonic() + 2 * settings.pull_expires)  # no 408 came: the requests are over
    await consumers.send(client)
    again = client.pulls()
    assert [subject for subject, _, _ in again] == [subject for subject, _, _ in first]


async def test_the_late_end_of_a_written_off_pull_request_does_not_count_against_the_next_one():
    settings = NatsSettings(stream="S", pull_expires=0.5, connect_timeout=30.0)
    client, consumers = await subscribed(settings)
    await consumers.send(client)
    first = client.pulls()
    consumers.keep_alive(time.monotonic() + 2 * settings.pull_expires)
    await consumers.send(client)
    second = client.pulls()
    assert len(second) == 2
    for _, _, reply in first:  # the 408s of the first requests come after all, late: they change nothing
        await client.deliver(request_timeout(reply, pending=5))
    await consumers.send(client)
    assert client.pulls() == [], "a third request went out while the second still waits at the server"
    for _, _, reply in second:  # the 408s of the current requests end them: they are renewed
        await client.deliver(request_timeout(reply, pending=5))
    await consumers.send(client)
    assert [reply for _, _, reply in client.pulls()] == [reply for _, _, reply in second]
