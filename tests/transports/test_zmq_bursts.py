"""A burst of deliveries: the connection sends its acknowledgements and replies every FLUSH_EVERY deliveries.

So the broker works on the start of a burst while the connection handles the rest (see
``wire.FLUSH_EVERY``), instead of the burst moving through the processes as one clump. Played against a
fake broker (a ROUTER socket of the test's own) that sends the whole burst as one MSG frame.
"""

import asyncio
import struct

import zmq

from minos.networks.transports import ConnectionClosedError
from minos.networks.transports.wire import FLUSH_EVERY, RECORD_HEAD, iter_records

from ..conftest import welcome_peer

TIMEOUT = 4.0
BURST = 2 * FLUSH_EVERY + FLUSH_EVERY // 2


async def test_a_burst_in_one_frame_is_acknowledged_in_parts_as_it_is_handled(async_sockets, connect):
    fake_broker = async_sockets(zmq.ROUTER)
    fake_broker.bind("inproc://bursts")
    replies = []

    class Replier:
        """Acknowledges each delivery and publishes a reply to it, as a dispatcher does."""

        connection = None

        def __call__(self, incoming) -> None:
            self.connection.ack([incoming.tag])
            replies.append(self.connection.publish_nowait("reply", incoming.body, 0))

    replier = Replier()
    async with asyncio.timeout(TIMEOUT):
        peer, connection = await asyncio.gather(
            welcome_peer(fake_broker), connect("inproc://bursts", replier, heartbeat_interval=1.0)
        )
        records = b"".join(
            RECORD_HEAD.pack(tag, 0, 5, 2) + b"event" + tag.to_bytes(2) for tag in range(1, BURST + 1)
        )
        await fake_broker.send_multipart([peer, b"MSG", records])

        acked: list[list[int]] = []
        published: list[list[int]] = []
        while sum(map(len, acked)) < BURST or sum(map(len, published)) < BURST:
            frames = await fake_broker.recv_multipart()
            if frames[1] == b"ACK":
                count = len(frames[2]) // 8
                acked.append(list(struct.unpack(f">{count}Q", frames[2])))
            elif frames[1] == b"PUB":
                published.append([int.from_bytes(body) for _, _, _, body in iter_records(frames[2])])
                if len(frames) == 4:  # the acknowledgements ride along, as (0, tag) pairs: unconditional
                    pairs = struct.unpack(f">{len(frames[3]) // 8}Q", frames[3])
                    assert set(pairs[::2]) == {0}
                    acked.append(list(pairs[1::2]))

    tags = list(range(1, BURST + 1))
    parts = [tags[:FLUSH_EVERY], tags[FLUSH_EVERY : 2 * FLUSH_EVERY], tags[2 * FLUSH_EVERY :]]
    assert acked == parts
    assert published == parts  # the replies to the first part left before the rest was handled
    assert not any(reply.done() for reply in replies)  # none accepted yet: the fake broker said nothing
    await connection.close(timeout=0.1)  # the fake broker never accepts them: they fail at close
    outcomes = await asyncio.gather(*replies, return_exceptions=True)
    assert all(isinstance(outcome, ConnectionClosedError) for outcome in outcomes)
