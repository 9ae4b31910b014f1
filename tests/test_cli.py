"""The command line, run the way a user runs it."""

import subprocess
import sys


def test_the_demo_round_trips_a_message_and_exits_zero():
    result = subprocess.run(
        [sys.executable, "-m", "minos.networks", "demo"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "round trip exact: True" in result.stdout
    assert "frame 0:" in result.stdout
    assert "frame 1:" in result.stdout


def test_no_command_prints_help_and_exits_with_the_usage_code():
    result = subprocess.run(
        [sys.executable, "-m", "minos.networks"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "demo" in result.stderr
