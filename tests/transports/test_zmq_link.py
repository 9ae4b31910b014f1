"""BrokerLink's reconnect backoff: doubling from 50 ms, capped at 2 s, for as many failed attempts as it takes."""

import zmq

from minos.networks.transports.zmq_link import BrokerLink


def test_the_backoff_stays_capped_after_thousands_of_failed_attempts():
    context = zmq.Context()
    try:
        link = BrokerLink(
            context, "inproc://nowhere", curve=None, max_frame_size=1024, heartbeat_interval=1.0
        )
        first = link.lose(now=0.0)
        link.attempts = 5_000  # about three hours of a broker down, at one attempt every 2 s
        late = link.lose(now=0.0)
    finally:
        context.term()
    assert 0.025 <= first <= 0.05
    assert 1.0 <= late <= 2.0  # 2 s, less up to half of it as jitter; 2**5000 overflowed a float before
    assert link.attempts == 5_001
