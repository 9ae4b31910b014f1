"""PublishWindow's settled publishes: told how they ended in the very call that learns it, no future."""

import asyncio

from minos.networks.transports import ConnectionClosedError
from minos.networks.transports.window import PublishWindow


def send_all(window: PublishWindow[bytes]) -> list[int]:
    taken = window.take(1 << 20)
    window.sent(taken, 0.0)
    return [publish.sequence for publish in taken]


async def test_a_settled_publish_is_told_inside_accepted_and_a_future_publish_resolves_beside_it():
    window: PublishWindow[bytes] = PublishWindow(10)
    window.bind(asyncio.get_running_loop())
    outcomes: list[BaseException | None] = []
    future = window.add("a", b"first")
    window.add_settled("b", b"second", outcomes.append)
    window.accepted(send_all(window))
    assert outcomes == [None]  # already: no loop turn in between
    assert future.done()
    assert future.result() is None
    assert len(window) == 0


async def test_a_settled_publish_is_told_the_error_when_the_window_fails():
    window: PublishWindow[bytes] = PublishWindow(10)
    window.bind(asyncio.get_running_loop())
    outcomes: list[BaseException | None] = []
    window.add_settled("b", b"body", outcomes.append)
    window.fail(lambda topic: ConnectionClosedError(f"closed before {topic!r} was accepted"))
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], ConnectionClosedError)
    assert "'b'" in str(outcomes[0])
    assert len(window) == 0


async def test_a_settled_publish_refused_for_good_is_told_the_error_and_leaves_the_window():
    window: PublishWindow[bytes] = PublishWindow(10)
    window.bind(asyncio.get_running_loop())
    outcomes: list[BaseException | None] = []
    window.add_settled("b", b"body", outcomes.append)
    (sequence,) = send_all(window)
    error = ValueError("refused for good")
    window.failed(sequence, error)
    assert outcomes == [error]
    assert len(window) == 0


async def test_withdraw_cancelled_drops_the_cancelled_futures_and_keeps_the_settled_publishes():
    window: PublishWindow[bytes] = PublishWindow(10)
    window.bind(asyncio.get_running_loop())
    outcomes: list[BaseException | None] = []
    window.add("a", b"one").cancel()
    window.add_settled("b", b"two", outcomes.append)
    window.withdraw_cancelled()
    assert len(window) == 1
    window.accepted(send_all(window))
    assert outcomes == [None]
    assert len(window) == 0


async def test_a_settle_that_raises_leaves_the_window_consistent_and_the_others_told(caplog):
    window: PublishWindow[bytes] = PublishWindow(10)
    window.bind(asyncio.get_running_loop())
    outcomes: list[BaseException | None] = []

    def broken(error: BaseException | None) -> None:
        raise RuntimeError("the owner's bug")

    window.add_settled("a", b"one", broken)
    window.add_settled("b", b"two", outcomes.append)
    window.accepted(send_all(window))
    assert outcomes == [None]
    assert len(window) == 0
    assert window.has_room
    assert "settle callback failed" in caplog.text
