"""The broker's routing state: groups, queues, credit windows and redelivery, with no I/O at all.

Every broker (the ZeroMQ broker process, the embedded one, the in-memory twin) drives one ``RoutingTable``
from its own I/O loop, so they all route alike:

- A subscriber connection (a *peer*) joins a *group* (its service name) for a *topic*. From that moment
  the group's queue for the topic exists and keeps what is published for it, even while the group has no
  live member: a late-joining or restarted member loses nothing published after its group registered.
- ``UNICAST`` puts a message in the queue of one group subscribed to its topic (round robin across
  groups), so exactly one subscriber instance handles it. ``MULTICAST`` puts a copy in every subscribed
  group's queue. A message for a topic no group has subscribed yet waits (within the same bound) and goes
  to the first group that subscribes.
- Inside a group, queued messages go to members that have credit, round robin. A peer's credit is its
  window minus what it holds unacknowledged, so a slow member is never flooded and no message waits on
  a per-message round trip.
- What a lost peer held unacknowledged goes back to the front of its queue, in order, for another
  member (or the same one when it comes back).
- The number of queued and in-flight messages is bounded: ``publish`` refuses (returns False) past the
  bound, and the caller tells the publisher, which slows down. Nothing is dropped silently.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..protocol.frames import MULTICAST_CODE

__all__ = ["Delivery", "RoutingStats", "RoutingTable"]


@dataclass(slots=True)
class _Message:
    topic: bytes
    body: bytes
    redelivered: bool = False


@dataclass(slots=True)
class _Queue:
    """The messages of one topic waiting for one group, and the group's live members."""

    topic: bytes
    group: bytes
    transient: bool = False
    messages: deque[_Message] = field(default_factory=deque)
    members: list[bytes] = field(default_factory=list)
    next_member: int = 0


@dataclass(slots=True)
class _Peer:
    window: int
    queues: list[_Queue] = field(default_factory=list)
    in_flight: dict[int, tuple[_Queue, _Message]] = field(default_factory=dict)

    @property
    def credit(self) -> int:
        return self.window - len(self.in_flight)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message the broker must now send to ``peer``; the peer acknowledges it by ``tag``."""

    peer: bytes
    tag: int
    topic: bytes
    body: bytes
    redelivered: bool


@dataclass(slots=True)
class RoutingStats:
    """Counters since the table was built."""

    published: int = 0
    refused: int = 0
    delivered: int = 0
    acknowledged: int = 0
    redelivered: int = 0
    unknown_acks: int = 0
    discarded: int = 0


class RoutingTable:
    """Routes published messages to subscriber peers and tracks what they have not acknowledged.

    Not thread-safe: one broker loop owns it.

    Args:
        max_messages: How many messages may be queued or in flight at once, in total.
        default_window: The credit window of a peer that does not ask for another one.
    """

    def __init__(self, *, max_messages: int = 1_000_000, default_window: int = 1000) -> None:
        if max_messages < 1 or default_window < 1:
            raise ValueError(
                f"max_messages and default_window must be at least 1, got {max_messages!r}, {default_window!r}"
            )
        self.max_messages = max_messages
        self.default_window = default_window
        self.stats = RoutingStats()
        self._queues: dict[tuple[bytes, bytes], _Queue] = {}
        self._groups_by_topic: dict[bytes, list[_Queue]] = {}
        self._next_group: dict[bytes, int] = {}
        self._unclaimed: dict[bytes, deque[_Message]] = {}
        self._peers: dict[bytes, _Peer] = {}
        self._ready: dict[int, _Queue] = {}  # queues that may be able to deliver, by id, in insertion order
        self._size = 0
        self._next_tag = 0

    # Questions ------------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """How many messages are queued or in flight."""
        return self._size

    def has_room(self) -> bool:
        """Whether ``publish`` would accept a message now."""
        return self._size < self.max_messages

    def queued(self, topic: bytes, group: bytes) -> int:
        """How many messages wait in the queue of ``group`` for ``topic`` (0 when it does not exist)."""
        queue = self._queues.get((topic, group))
        return len(queue.messages) if queue is not None else 0

    def in_flight(self, peer: bytes) -> int:
        """How many deliveries ``peer`` holds unacknowledged."""
        state = self._peers.get(peer)
        return len(state.in_flight) if state is not None else 0

    def depths(self) -> list[tuple[bytes, bytes, int]]:
        """``(topic, group, queued)`` of every queue: the messages waiting there, not those in flight.

        A snapshot that another thread may take while the owner routes (metrics do): the queues are
        copied in one step, and each length is read atomically.
        """
        return [(queue.topic, queue.group, len(queue.messages)) for queue in list(self._queues.values())]

    def peers(self) -> list[bytes]:
        """The peers that have subscribed to something and are not lost."""
        return list(self._peers)

    # Events ---------------------------------------------------------------------------------------------

    def subscribe(
        self, peer: bytes, group: bytes, topic: bytes, *, window: int | None = None, transient: bool = False
    ) -> None:
        """Make ``peer`` a member of ``group`` for ``topic``, creating the group's queue if needed.

        Args:
            window: The peer's credit window (set by its first subscription; the default otherwise).
            transient: The queue goes away with its last member, and what it still holds is discarded
                (counted in ``stats.discarded``). For private reply topics, whose owner is gone for good.
        """
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = _Peer(window=window or self.default_window)
        queue = self._queues.get((topic, group))
        if queue is None:
            queue = self._queues[(topic, group)] = _Queue(topic=topic, group=group, transient=transient)
            self._groups_by_topic.setdefault(topic, []).append(queue)
            unclaimed = self._unclaimed.pop(topic, None)
            if unclaimed:
                queue.messages.extend(unclaimed)
        if peer not in queue.members:
            queue.members.append(peer)
            state.queues.append(queue)
        self._mark_ready(queue)

    def publish(self, topic: bytes, body: bytes, strategy: int) -> bool:
        """Queue a message for the groups subscribed to ``topic``.

        Returns:
            False, queueing nothing, when the broker is full: the publisher must retry later.
        """
        groups = self._groups_by_topic.get(topic)
        copies = len(groups) if groups and strategy == MULTICAST_CODE else 1
        if self._size + copies > self.max_messages:
            self.stats.refused += 1
            return False
        self.stats.published += 1
        self._size += copies
        if not groups:
            self._unclaimed.setdefault(topic, deque()).append(_Message(topic, body))
        elif strategy == MULTICAST_CODE:
            for queue in groups:
                queue.messages.append(_Message(topic, body))
                self._mark_ready(queue)
        else:
            index = self._next_group.get(topic, 0) % len(groups)
            self._next_group[topic] = index + 1
            queue = groups[index]
            queue.messages.append(_Message(topic, body))
            self._mark_ready(queue)
        return True

    def ack(self, peer: bytes, tags: Iterable[int]) -> None:
        """Forget the deliveries ``peer`` has handled, giving it credit for more."""
        state = self._peers.get(peer)
        if state is None:
            return
        for tag in tags:
            entry = state.in_flight.pop(tag, None)
            if entry is None:
                self.stats.unknown_acks += 1
                continue
            self.stats.acknowledged += 1
            self._size -= 1
        for queue in state.queues:
            self._mark_ready(queue)

    def peer_lost(self, peer: bytes) -> int:
        """Drop ``peer`` from its groups and requeue what it held unacknowledged, in order.

        Returns:
            How many messages were requeued.
        """
        state = self._peers.pop(peer, None)
        if state is None:
            return 0
        for queue in state.queues:
            queue.members.remove(peer)
        requeued = sorted(state.in_flight.items(), reverse=True)
        for _, (queue, message) in requeued:
            message.redelivered = True
            queue.messages.appendleft(message)
            self._mark_ready(queue)
        self.stats.redelivered += len(requeued)
        for queue in state.queues:
            if queue.transient and not queue.members:
                self._forget(queue)
        return len(requeued)

    def take_deliveries(self, limit: int | None = None) -> list[Delivery]:
        """Hand queued messages to members with credit and return what must now be sent.

        Args:
            limit: At most this many deliveries (the rest stay ready for the next call).
        """
        deliveries: list[Delivery] = []
        budget = limit if limit is not None else self._size
        while self._ready and budget > 0:
            key = next(iter(self._ready))
            queue = self._ready.pop(key)
            budget -= self._drain(queue, budget, deliveries)
        return deliveries

    # Internals ------------------------------------------------------------------------------------------

    def _forget(self, queue: _Queue) -> None:
        del self._queues[(queue.topic, queue.group)]
        groups = self._groups_by_topic[queue.topic]
        groups.remove(queue)
        if not groups:
            del self._groups_by_topic[queue.topic]
            self._next_group.pop(queue.topic, None)
        self._ready.pop(id(queue), None)
        self.stats.discarded += len(queue.messages)
        self._size -= len(queue.messages)
        queue.messages.clear()

    def _mark_ready(self, queue: _Queue) -> None:
        if queue.messages and queue.members:
            self._ready[id(queue)] = queue

    def _drain(self, queue: _Queue, budget: int, out: list[Delivery]) -> int:
        members = queue.members
        sent = 0
        starved = 0  # members in a row found without credit; all of them means stop
        while queue.messages and starved < len(members) and sent < budget:
            index = queue.next_member % len(members)
            queue.next_member = index + 1
            peer = members[index]
            state = self._peers[peer]
            if state.credit <= 0:
                starved += 1
                continue
            starved = 0
            message = queue.messages.popleft()
            self._next_tag += 1
            state.in_flight[self._next_tag] = (queue, message)
            out.append(Delivery(peer, self._next_tag, message.topic, message.body, message.redelivered))
            sent += 1
        self.stats.delivered += sent
        if queue.messages and starved < len(members):
            self._mark_ready(queue)  # the budget ran out before the credit did
        return sent
