"""The host's name and address, and consume_queue, as minos 0.7 offered them."""

import asyncio
import ipaddress
import socket

import pytest

from minos.networks.system import consume_queue, get_host_ip, get_host_name, get_ip


def test_the_host_name_is_the_socket_host_name():
    assert get_host_name() == socket.gethostname()


def test_an_ip_is_resolved_from_a_name():
    assert get_ip("localhost").startswith("127.")
    assert get_ip("10.1.2.3") == "10.1.2.3"


def test_the_host_ip_is_what_the_host_name_resolves_to():
    ip = get_host_ip()
    assert ipaddress.ip_address(ip).version == 4
    assert ip == socket.gethostbyname(socket.gethostname())


def test_an_unknown_name_is_an_os_error():
    with pytest.raises(socket.gaierror):
        get_ip("no-such-host.invalid")


async def test_consume_queue_takes_what_is_there_up_to_max_count():
    queue: asyncio.Queue[int] = asyncio.Queue()
    for item in range(5):
        queue.put_nowait(item)
    await consume_queue(queue, 3)
    assert queue.qsize() == 2
    await consume_queue(queue, 10)
    assert queue.empty()
    await asyncio.wait_for(queue.join(), 1)  # each item taken was marked done


async def test_consume_queue_waits_for_the_first_item():
    queue: asyncio.Queue[str] = asyncio.Queue()
    consuming = asyncio.ensure_future(consume_queue(queue, 10))
    await asyncio.wait({consuming}, timeout=0)
    assert not consuming.done()
    queue.put_nowait("wake up")
    await asyncio.wait_for(consuming, 1)
    assert queue.empty()


async def test_consume_queue_needs_a_positive_max_count():
    with pytest.raises(ValueError, match="max_count must be at least 1"):
        await consume_queue(asyncio.Queue(), 0)
