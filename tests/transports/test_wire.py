"""The I/O loops' helpers in ``transports.wire``: the Wakeup with one timer for all its waits, the socket drain."""

import asyncio

import zmq

from minos.networks.transports.wire import Wakeup, readable, recv_parts, send_parts

TIMEOUT = 4.0


async def test_a_wake_up_given_before_the_wait_is_not_lost():
    waker = Wakeup(asyncio.get_running_loop())
    waker.set()
    async with asyncio.timeout(TIMEOUT):
        await waker.wait(60.0)  # returns at once: the wake-up was kept


async def test_a_wait_ends_when_woken():
    loop = asyncio.get_running_loop()
    waker = Wakeup(loop)
    loop.call_soon(waker.set)
    async with asyncio.timeout(TIMEOUT):
        await waker.wait(60.0)
    waker.close()


async def test_a_wait_ends_at_its_deadline_without_a_wake_up():
    loop = asyncio.get_running_loop()
    waker = Wakeup(loop)
    started = loop.time()
    async with asyncio.timeout(TIMEOUT):
        await waker.wait(0.05)
    assert loop.time() - started >= 0.04  # uvloop's clock has a millisecond's grain


async def test_a_shorter_wait_after_a_longer_one_is_not_held_to_the_longer_deadline():
    loop = asyncio.get_running_loop()
    waker = Wakeup(loop)
    loop.call_soon(waker.set)
    await waker.wait(60.0)  # arms a timer a minute away, which then stays
    async with asyncio.timeout(TIMEOUT):
        await waker.wait(0.01)  # needs an earlier one
    waker.close()


async def test_one_timer_serves_waits_whose_deadlines_come_later():
    loop = asyncio.get_running_loop()
    waker = Wakeup(loop)
    armed = []
    call_at = loop.call_at

    def counting_call_at(when, callback, *args):
        armed.append(when)
        return call_at(when, callback, *args)

    loop.call_at = counting_call_at  # type: ignore[method-assign]
    try:
        for delay in (10.0, 20.0, 30.0):
            loop.call_soon(waker.set)
            await waker.wait(delay)
    finally:
        del loop.call_at
        waker.close()
    assert len(armed) == 1


async def test_a_drain_reads_every_part_of_every_queued_message_and_stops_when_none_is_left():
    context = zmq.Context()
    sender, receiver = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    try:
        receiver.bind("inproc://wire-drain")
        sender.connect("inproc://wire-drain")
        send_parts(sender, [b"MSG", b"one"])
        send_parts(sender, [b"HB"])
        send_parts(sender, [b"SUB", b"head", b"group", b"topic"])
        drained = []
        while readable(receiver):
            drained.append(recv_parts(receiver))
        assert drained == [[b"MSG", b"one"], [b"HB"], [b"SUB", b"head", b"group", b"topic"]]
        assert not readable(receiver)
    finally:
        sender.close(linger=0)
        receiver.close(linger=0)
        context.term()
