"""What a person sees when something is wrong, with real processes: one line on stderr (or none), an exit code.

Each case of the README's table "What fails, and what you see" that involves a command is here, with its
exact message. Every wait is bounded: the command's exit (``COMMAND_TIMEOUT``).
"""

import subprocess
import sys
import time

import pytest

from .test_cli_run import COMMAND_TIMEOUT, command, environment, workdir  # noqa: F401 (workdir is a fixture)

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


MANY_ROUTES_MODULE = """
from minos.networks import Request, Response, enroute


class Wide:
    pass


for index in range(400):
    async def handler(self, request: Request) -> Response:
        return Response(None)

    setattr(Wide, f"route{index}", enroute.rest.query(f"/wide/{index}", method="GET")(handler))
"""


def test_docs_into_a_pipe_closed_early_exits_141_without_a_word(workdir):  # noqa: F811
    (workdir / "cli_wide_service.py").write_text(MANY_ROUTES_MODULE)
    config = workdir / "wide.yml"
    config.write_text("name: wide\ninterfaces:\n  http:\n    port: 0\nservices:\n  - cli_wide_service.Wide\n")
    # As `minos-networks docs wide.yml | head -c 100`: the reader goes away after 100 bytes of a document
    # far larger than a pipe holds, so the command's next write finds the pipe closed.
    process = subprocess.Popen(
        [sys.executable, "-m", "minos.networks", "docs", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(workdir),
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        assert len(process.stdout.read(100)) == 100
        process.stdout.close()
        stderr = process.stderr.read()
        assert process.wait(COMMAND_TIMEOUT) == 141
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    assert stderr == b""


def test_no_help_text_carries_rst_markup(capsys):
    from minos.networks.cli import main

    commands = ["demo", "broker", "keygen", "dead-letters", "run", "check-config", "publish", "docs"]
    texts = []
    for args in ([], *([name] for name in commands)):
        with pytest.raises(SystemExit):
            main([*args, "--help"])
        texts.append(capsys.readouterr().out)
    assert all(text.startswith("usage: minos-networks") for text in texts)
    assert [text for text in texts if "``" in text or ":class:" in text or ":func:" in text] == []
