"""What ``BrokerServer.stats`` answers: a snapshot of the broker's counters, readable from any thread.

The figures come from the routing table (messages), ``peers.BrokerPeers`` (peers and malformed
frames), the broker itself (frames of unknown peers) and its CURVE guard (refused handshakes);
``minos-networks broker --stats`` prints the difference between two snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BrokerStats"]


@dataclass(frozen=True, slots=True)
class BrokerStats:
    """A snapshot of a broker's counters (those of its routing table, then its own)."""

    published: int
    refused: int
    delivered: int
    acknowledged: int
    redelivered: int
    unknown_acks: int
    discarded: int
    size: int
    """Messages queued or in flight now."""
    peers: int
    """Peers connected now (said HELLO, not gone)."""
    lost_peers: int
    """Peers declared lost, by silence or because a send to them failed (not those that said BYE)."""
    malformed: int
    """Frames ignored because they break the wire protocol."""
    ignored: int
    """Frames of known commands ignored because their peer is unknown (answered by RESET)."""
    cut_off_peers: int
    """Peers forgotten for sending too many malformed frames (``wire.MALFORMED_CUTOFF``)."""
    refused_handshakes: int
    """CURVE handshakes refused: unknown client key, no CURVE, or a wrong server key."""
