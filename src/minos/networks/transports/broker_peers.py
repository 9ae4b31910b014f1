"""The broker's bookkeeping per peer: who is connected, who went silent, who sends malformed frames.

``BrokerServer`` routes; ``BrokerPeers`` remembers, for each peer connected to the broker's ROUTER socket,
when it was last heard from and from which sequence its publishing is refused, and counts its malformed
frames: a peer sending ``MALFORMED_CUTOFF`` of them within ``MALFORMED_WINDOW`` seconds is forgotten
(as if lost). Forgetting a peer tells the routing table, which delivers again what the peer held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from .routing import RoutingTable
from .wire import LOST_AFTER, MALFORMED_CUTOFF, MALFORMED_WINDOW, PROTOCOL_VERSION, LogLimiter

__all__ = ["BrokerPeers"]

# The broker's own logger: these lines are about what the broker does, and that is the name operators
# (and the tests) filter on, wherever the code that writes them lives.
logger = logging.getLogger("minos.networks.transports.broker")

_MAX_STRUCK_PEERS: Final = 10_000  # peers whose malformed frames are counted at once; bounds the memory


class BrokerPeers:
    """The peers of one broker, owned by its loop; ``seen`` and the counters may be read from any thread.

    Args:
        table: The broker's routing table, told of every peer forgotten.
    """

    __slots__ = (
        "_log_cut_off",
        "_log_malformed",
        "_strikes",
        "_strikes_until",
        "_table",
        "blocked",
        "cut_off",
        "lost",
        "malformed",
        "seen",
    )

    def __init__(self, table: RoutingTable) -> None:
        self._table = table
        self.seen: dict[bytes, float] = {}  # connected peers: when each was last heard from
        self.blocked: dict[bytes, int] = {}  # peer -> first refused sequence (see the ordering rule)
        self.lost = 0  # peers lost by silence, a failed send or malformed frames; not those saying BYE
        self.malformed = 0  # frames ignored because they break the wire protocol
        self.cut_off = 0  # peers forgotten for sending too many malformed frames
        self._strikes: dict[bytes, int] = {}  # peer -> malformed frames in the current window
        self._strikes_until = 0.0
        self._log_malformed = LogLimiter()
        self._log_cut_off = LogLimiter()

    def forget(self, peer: bytes, *, lost: bool) -> None:
        """Forget ``peer``, if connected, and requeue what it held; ``lost`` counts it as lost."""
        if self.seen.pop(peer, None) is None:
            return
        self.blocked.pop(peer, None)
        self._table.peer_lost(peer)
        if lost:
            self.lost += 1

    def tick(self, now: float, heartbeat_interval: float, heartbeat: Callable[[bytes], object]) -> None:
        """Once per heartbeat: forget the peers silent for ``LOST_AFTER`` intervals, ``heartbeat`` the others.

        Also starts a new window of malformed-frame counts once the current one is over.
        """
        if now >= self._strikes_until:
            self._strikes.clear()
            self._strikes_until = now + MALFORMED_WINDOW
        deadline = now - LOST_AFTER * heartbeat_interval
        for peer, last_heard in list(self.seen.items()):
            if last_heard < deadline:
                logger.info(
                    "peer %s silent for %.3f s (over %d heartbeats); requeueing what it held",
                    peer.hex(),
                    now - last_heard,
                    LOST_AFTER,
                )
                self.forget(peer, lost=True)
            else:
                heartbeat(peer)

    def malformed_frame(self, frames: list[bytes], why: str) -> None:
        """Count and log (at most once a second) a frame breaking the protocol; cut off its peer at too many."""
        self.malformed += 1
        peer = frames[0] if frames else b""
        strikes = self._strikes
        if len(strikes) >= _MAX_STRUCK_PEERS and peer not in strikes:
            strikes.clear()  # a flood of fresh routing ids: start counting again rather than grow
        count = strikes[peer] = strikes.get(peer, 0) + 1
        if count >= MALFORMED_CUTOFF:
            del strikes[peer]
            self._cut_off_peer(peer)
        if not self._log_malformed():
            return
        command = frames[1][:16] if len(frames) > 1 else b""
        logger.warning(
            "ignored a malformed frame from peer %s (command %r, %d parts): %s; %d malformed so far "
            "(logged at most once a second): is the client speaking minos wire protocol version %d?",
            peer.hex(),
            command,
            len(frames),
            why,
            self.malformed,
            PROTOCOL_VERSION,
        )

    def _cut_off_peer(self, peer: bytes) -> None:
        self.cut_off += 1
        known = peer in self.seen
        self.forget(peer, lost=True)
        if self._log_cut_off():
            logger.warning(
                "cut off peer %s: %d malformed frames within %.0f s%s; %d peers cut off so far (logged at "
                "most once a second): check what runs at that peer, it does not speak the minos wire protocol",
                peer.hex(),
                MALFORMED_CUTOFF,
                MALFORMED_WINDOW,
                "; requeueing what it held" if known else "",
                self.cut_off,
            )
