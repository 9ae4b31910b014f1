"""The command line, run the way a user runs it."""

import re
import select
import signal
import subprocess
import sys
import time

READY = "minos-networks broker: serving on"


def test_the_demo_runs_two_services_on_an_embedded_broker_and_exits_zero():
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "minos.networks", "demo"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "[client]   <- HTTP 200 {'order': 1, 'paid': True, 'receipt': 'r-1', 'charged': 42}" in out
    assert "[broker]   payments  <- command payment.charge {'order': 1, 'amount': 42}" in out
    assert "HTTP answered through the broker: True" in out
    assert "event order.paid seen by both services (MULTICAST): True" in out
    assert "[periodic] payments  heartbeat at " in out
    assert "periodic task fired: True" in out
    assert re.search(r"^500 orders through HTTP and the broker .* req/s, .*; 500 answered right", out, re.M)
    assert "every reply right: True" in out
    assert "WRONG" not in out
    assert time.monotonic() - started < 15, "the demo should take a few seconds"


def test_no_command_prints_help_and_exits_with_the_usage_code():
    result = subprocess.run(
        [sys.executable, "-m", "minos.networks"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "demo" in result.stderr
    assert "broker" in result.stderr


def test_the_broker_command_serves_until_sigterm_and_exits_zero():
    process = subprocess.Popen(
        [sys.executable, "-m", "minos.networks", "broker", "--bind", "tcp://127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        readable, _, _ = select.select([process.stdout], [], [], 15)  # bounded wait for the ready line
        assert readable, "the broker printed nothing within 15 s"
        ready = process.stdout.readline()
        assert ready.startswith(READY), process.stderr.read()
        assert ready.split()[-1].startswith("tcp://127.0.0.1:")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "stopped; published 0" in out


def test_the_broker_command_exits_one_with_a_clear_message_when_it_cannot_bind():
    result = subprocess.run(
        [sys.executable, "-m", "minos.networks", "broker", "--bind", "tcp://256.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot bind 'tcp://256.0.0.1:1'" in result.stderr
