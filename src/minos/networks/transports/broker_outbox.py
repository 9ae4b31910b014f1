"""BrokerOutbox: what one turn of the broker sends on its ROUTER socket: answers, deliveries, then receipts.

``BrokerServer`` handles a batch of frames; the answers its handlers produce wait in ``replies`` (WELCOME,
SUBOK, RESET) and ``receipts`` (PUBOK, PUBNO). The turn's ``flush`` sends the replies, then what the routing
table has to deliver, one MSG frame of records per peer, then the receipts: a delivery is what someone
waits for (a request's handler, a reply's client), a receipt only frees a publisher's window, so on two
cores the process a delivery wakes gets the free core first. A peer the ROUTER can no longer reach is
forgotten (what it held goes back to its group).
"""

from __future__ import annotations

import logging

import zmq

from .broker_peers import BrokerPeers
from .routing import RoutingTable
from .wire import BATCH, MSG, RECORD_HEAD, RECORDS_FRAME_BYTES, send_parts

__all__ = ["BrokerOutbox"]

logger = logging.getLogger("minos.networks.transports.broker")  # one name for the broker's modules


class BrokerOutbox:
    """The frames a broker sends, owned by its loop.

    Args:
        table: The broker's routing table, whose deliveries ``flush`` takes.
        peers: The broker's peers, told of one the socket cannot reach.
    """

    __slots__ = ("_peers", "_table", "receipts", "replies", "sent")

    def __init__(self, table: RoutingTable, peers: BrokerPeers) -> None:
        self._table = table
        self._peers = peers
        self.replies: list[list[bytes]] = []  # the batch's answers, [peer, command, ...] each
        self.receipts: list[list[bytes]] = []  # the batch's PUBOK and PUBNO, sent after the deliveries
        self.sent = False  # whether anything was sent since the broker last set it to False

    def flush(self, socket: zmq.Socket[bytes]) -> bool:
        """Send the replies, up to ``BATCH`` deliveries, then the receipts; return whether deliveries may
        remain to be taken."""
        replies, self.replies = self.replies, []
        for frames in replies:
            self.send(socket, frames)
        more = self._deliver(socket)
        receipts, self.receipts = self.receipts, []
        for frames in receipts:
            self.send(socket, frames)
        return more

    def _deliver(self, socket: zmq.Socket[bytes]) -> bool:
        deliveries = self._table.take_deliveries(BATCH)
        if not deliveries:
            return False
        # One MSG frame per peer, cut at about RECORDS_FRAME_BYTES so large bodies do not pile up into one.
        records: dict[bytes, list[bytes]] = {}
        sizes: dict[bytes, int] = {}
        lost: set[bytes] = set()
        pack = RECORD_HEAD.pack
        for delivery in deliveries:
            peer, topic, body = delivery.peer, delivery.topic, delivery.body
            if peer in lost:
                continue  # requeued with everything else the peer held
            parts = records.get(peer)
            if parts is None:
                parts = records[peer] = []
            parts += (pack(delivery.tag, delivery.redelivered, len(topic), len(body)), topic, body)
            size = sizes[peer] = sizes.get(peer, 0) + len(topic) + len(body)
            if size >= RECORDS_FRAME_BYTES:
                if not self.send(socket, [peer, MSG, b"".join(parts)]):
                    lost.add(peer)
                records[peer], sizes[peer] = [], 0
        for peer, parts in records.items():
            if parts and peer not in lost and not self.send(socket, [peer, MSG, b"".join(parts)]):
                lost.add(peer)
        return bool(lost) or len(deliveries) == BATCH

    def send(self, socket: zmq.Socket[bytes], frames: list[bytes]) -> bool:
        """Send ``frames`` to their peer (the first frame); return False if it is unreachable (then forgotten).

        Raises:
            zmq.ZMQError: on a failure other than an unreachable peer or a full pipe.
        """
        self.sent = True
        try:
            send_parts(socket, frames)
        except zmq.ZMQError as exc:
            self._unreachable(frames[0], exc)
            return False
        return True

    def _unreachable(self, peer: bytes, exc: zmq.ZMQError) -> None:
        if exc.errno not in (zmq.EHOSTUNREACH, zmq.EAGAIN):
            raise exc
        if peer in self._peers.seen:
            logger.info("peer %s is unreachable (%s); requeueing what it held", peer.hex(), exc.strerror)
            self._peers.forget(peer, lost=True)
