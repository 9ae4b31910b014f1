"""What a person sees when something is wrong, with real processes: one line on stderr, an exit code.

Each case of the README's table "What fails, and what you see" that involves a command is here, with its
exact message. Every wait is bounded: the command's exit (``COMMAND_TIMEOUT``).
"""

import time

import pytest

from .test_cli_run import command, workdir  # noqa: F401 (workdir is a fixture)

CONNECT_TIMEOUT = 1.0  # interfaces.broker.connect_timeout of the configs below
STARTUP_ALLOWANCE = 14.0  # seconds for an interpreter to start and import on a busy machine

NO_BROKER_CONFIG = """
name: echo
interfaces:
  broker:
    endpoint: "{endpoint}"
    connect_timeout: {timeout}
services:
  - cli_run_service.EchoService
"""


@pytest.fixture
def no_broker(workdir):  # noqa: F811
    """A config naming an ipc endpoint where no broker listens, and that endpoint."""
    endpoint = f"ipc://{workdir / 'nobody.sock'}"
    config = workdir / "no-broker.yml"
    config.write_text(NO_BROKER_CONFIG.format(endpoint=endpoint, timeout=CONNECT_TIMEOUT))
    return config, endpoint


def no_broker_line(prefix, endpoint):
    return (
        f"{prefix}: no broker answered at {endpoint!r} within {CONNECT_TIMEOUT} s; start one there "
        "(minos-networks broker) or check the endpoint\n"
    )


@pytest.mark.parametrize(
    ("args", "prefix"),
    [
        (["run", "{config}"], "minos-networks run: echo failed to start"),
        (["publish", "{config}", "echo.ask", "1"], "minos-networks publish"),
        (
            ["publish", "{config}", "echo.ask", "1", "--wait-reply", "--timeout", "3"],
            "minos-networks publish",
        ),
        (["dead-letters", "list", "{config}"], "minos-networks dead-letters list"),
    ],
    ids=["run", "publish", "publish --wait-reply", "dead-letters list"],
)
def test_a_command_without_a_broker_prints_one_line_naming_the_endpoint_and_exits_one(
    workdir,  # noqa: F811
    no_broker,
    args,
    prefix,
):
    config, endpoint = no_broker
    started = time.monotonic()
    result = command(workdir, *(arg.format(config=config) for arg in args))
    elapsed = time.monotonic() - started

    assert result.returncode == 1, result
    assert result.stderr == no_broker_line(prefix, endpoint)  # one line: no log lines, no traceback
    assert CONNECT_TIMEOUT <= elapsed < CONNECT_TIMEOUT + STARTUP_ALLOWANCE
