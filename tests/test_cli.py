"""The command line, run the way a user runs it."""

import select
import signal
import subprocess
import sys

READY = "minos-networks broker: serving on"


def test_the_demo_serves_requests_through_an_embedded_broker_and_exits_zero():
    result = subprocess.run(
        [sys.executable, "-m", "minos.networks", "demo"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "user.create -> status 200" in result.stdout
    assert "reply correlates with the request: True" in result.stdout
    assert "2000 queries answered" in result.stdout


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
