"""The broker's routing table: groups, strategies, credit, redelivery and bounds, without any I/O."""

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minos.networks.protocol.frames import MULTICAST_CODE, UNICAST_CODE
from minos.networks.transports import RoutingTable


def _bodies(deliveries):
    return [d.body for d in deliveries]


def test_a_unicast_message_reaches_exactly_one_member_of_one_group():
    table = RoutingTable()
    for peer, group in [(b"a1", b"orders"), (b"a2", b"orders"), (b"b1", b"billing")]:
        table.subscribe(peer, group, b"order.created")
    for i in range(6):
        assert table.publish(b"order.created", b"m%d" % i, UNICAST_CODE)
    deliveries = table.take_deliveries()
    assert sorted(_bodies(deliveries)) == [b"m%d" % i for i in range(6)]
    assert Counter(d.body for d in deliveries).most_common(1)[0][1] == 1
    # Round robin across groups: both groups got some.
    assert {d.peer for d in deliveries} >= {b"b1"}


def test_a_multicast_message_reaches_one_member_per_group():
    table = RoutingTable()
    for peer, group in [(b"a1", b"orders"), (b"a2", b"orders"), (b"b1", b"billing")]:
        table.subscribe(peer, group, b"order.created")
    assert table.publish(b"order.created", b"event", MULTICAST_CODE)
    deliveries = table.take_deliveries()
    assert len(deliveries) == 2
    assert {d.peer for d in deliveries} & {b"a1", b"a2"}
    assert b"b1" in {d.peer for d in deliveries}


def test_members_of_a_group_share_its_queue_round_robin():
    table = RoutingTable()
    table.subscribe(b"a1", b"orders", b"t")
    table.subscribe(b"a2", b"orders", b"t")
    for i in range(4):
        table.publish(b"t", b"%d" % i, UNICAST_CODE)
    assert Counter(d.peer for d in table.take_deliveries()) == {b"a1": 2, b"a2": 2}


def test_a_peer_never_holds_more_than_its_window_unacknowledged():
    table = RoutingTable(default_window=3)
    table.subscribe(b"p", b"g", b"t")
    for i in range(10):
        table.publish(b"t", b"%d" % i, UNICAST_CODE)
    first = table.take_deliveries()
    assert _bodies(first) == [b"0", b"1", b"2"]
    assert table.take_deliveries() == []
    table.ack(b"p", [first[0].tag, first[1].tag])
    assert _bodies(table.take_deliveries()) == [b"3", b"4"]
    assert table.in_flight(b"p") == 3


def test_what_a_lost_peer_held_goes_back_first_and_in_order_marked_redelivered():
    table = RoutingTable(default_window=2)
    table.subscribe(b"p1", b"g", b"t")
    for i in range(4):
        table.publish(b"t", b"%d" % i, UNICAST_CODE)
    held = table.take_deliveries()
    assert _bodies(held) == [b"0", b"1"]
    assert table.peer_lost(b"p1") == 2
    table.subscribe(b"p2", b"g", b"t", window=10)
    again = table.take_deliveries()
    assert _bodies(again) == [b"0", b"1", b"2", b"3"]
    assert [d.redelivered for d in again] == [True, True, False, False]
    assert table.stats.redelivered == 2


def test_a_group_keeps_messages_while_it_has_no_live_member():
    table = RoutingTable()
    table.subscribe(b"p1", b"g", b"t")
    table.peer_lost(b"p1")
    table.publish(b"t", b"kept", UNICAST_CODE)
    assert table.queued(b"t", b"g") == 1
    table.subscribe(b"p2", b"g", b"t")
    assert _bodies(table.take_deliveries()) == [b"kept"]


def test_messages_published_before_any_subscription_go_to_the_first_group():
    table = RoutingTable()
    table.publish(b"t", b"early", UNICAST_CODE)
    table.subscribe(b"p", b"g", b"t")
    assert _bodies(table.take_deliveries()) == [b"early"]


def test_a_transient_queue_goes_away_with_its_last_member_and_counts_what_it_discards():
    table = RoutingTable(default_window=1)
    table.subscribe(b"client", b"reply-1", b"reply-1", transient=True)
    table.publish(b"reply-1", b"a", UNICAST_CODE)
    table.publish(b"reply-1", b"b", UNICAST_CODE)
    table.take_deliveries()
    table.peer_lost(b"client")
    assert table.stats.discarded == 2
    assert table.size == 0
    assert table.queued(b"reply-1", b"reply-1") == 0


def test_publish_refuses_past_the_bound_and_accepts_again_after_acks():
    table = RoutingTable(max_messages=2)
    table.subscribe(b"p", b"g", b"t")
    assert table.publish(b"t", b"1", UNICAST_CODE)
    assert table.publish(b"t", b"2", UNICAST_CODE)
    assert not table.has_room()
    assert not table.publish(b"t", b"3", UNICAST_CODE)
    assert table.stats.refused == 1
    table.ack(b"p", [d.tag for d in table.take_deliveries()])
    assert table.publish(b"t", b"3", UNICAST_CODE)


def test_an_unknown_acknowledgement_is_counted_not_fatal():
    table = RoutingTable()
    table.subscribe(b"p", b"g", b"t")
    table.ack(b"p", [12345])
    table.ack(b"stranger", [1])
    assert table.stats.unknown_acks == 1


def test_take_deliveries_respects_its_limit_and_resumes():
    table = RoutingTable()
    table.subscribe(b"p", b"g", b"t")
    for i in range(5):
        table.publish(b"t", b"%d" % i, UNICAST_CODE)
    assert _bodies(table.take_deliveries(limit=2)) == [b"0", b"1"]
    assert _bodies(table.take_deliveries()) == [b"2", b"3", b"4"]


def test_bad_bounds_are_refused_with_the_values():
    with pytest.raises(ValueError, match="at least 1, got 0, 1000"):
        RoutingTable(max_messages=0)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_under_random_traffic_and_peer_losses_nothing_is_lost_or_duplicated(seed):
    """Model check: every published message is acknowledged exactly once per receiving group."""
    rng = random.Random(seed)
    table = RoutingTable(max_messages=50, default_window=rng.randint(1, 5))
    groups = [b"g1", b"g2"]
    live: dict[bytes, bytes] = {}  # peer -> group
    held: dict[bytes, list] = {}
    acked: Counter = Counter()
    expected: Counter = Counter()
    next_peer = 0
    for group in groups:  # both groups exist before traffic, so multicast has two receivers
        next_peer += 1
        peer = b"p%d" % next_peer
        table.subscribe(peer, group, b"t")
        live[peer], held[peer] = group, []
    for step in range(300):
        action = rng.random()
        if action < 0.4:
            strategy = MULTICAST_CODE if rng.random() < 0.3 else UNICAST_CODE
            body = b"%d" % step
            if table.publish(b"t", body, strategy):
                for group in groups if strategy == MULTICAST_CODE else ["any"]:
                    expected[(body, group)] += 1
        elif action < 0.75 and live:
            peer = rng.choice(sorted(live))
            if held[peer]:
                done = held[peer][: rng.randint(1, len(held[peer]))]
                held[peer] = held[peer][len(done) :]
                table.ack(peer, [d.tag for d in done])
                for d in done:
                    acked[(d.body, live[peer])] += 1
        elif action < 0.85 and live:
            peer = rng.choice(sorted(live))
            table.peer_lost(peer)
            del live[peer], held[peer]
        else:
            next_peer += 1
            peer = b"p%d" % next_peer
            live[peer] = rng.choice(groups)
            held[peer] = []
            table.subscribe(peer, live[peer], b"t")
        for d in table.take_deliveries():
            held[d.peer].append(d)
    # Drain: one fresh member per group acknowledges everything that is left.
    for group in groups:
        table.subscribe(b"drain-" + group, group, b"t", window=10_000)
        live[b"drain-" + group], held[b"drain-" + group] = group, []
    for peer in list(live):
        if not peer.startswith(b"drain-"):
            table.peer_lost(peer)
    for d in table.take_deliveries():
        table.ack(d.peer, [d.tag])
        acked[(d.body, live[d.peer])] += 1
    assert table.size == 0
    multicast = {key: n for key, n in expected.items() if key[1] != "any"}
    assert all(acked[key] == n for key, n in multicast.items())
    unicast_bodies = Counter(
        body for (body, group), n in expected.items() if group == "any" for _ in range(n)
    )
    multicast_bodies = Counter(body for (body, _), n in multicast.items() for _ in range(n))
    assert (
        Counter(body for (body, _), n in acked.items() for _ in range(n)) == unicast_bodies + multicast_bodies
    )
