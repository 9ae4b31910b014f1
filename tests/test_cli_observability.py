"""Observability from the command line, in real processes: broker --stats, bench, JSON logs and /metrics.

Every wait is bounded and rests on a handshake: a line the process prints, a reply, or its exit.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from minos.common import Config
from minos.networks import BrokerMessageV1, BrokerMessageV1Payload, BrokerPublisher, cli
from minos.networks.cli import showcase

from .conftest import CliProcess

START_TIMEOUT = 20.0  # seconds for a process to print its ready line
LINE_TIMEOUT = 10.0  # seconds for an expected line once ready
STOP_TIMEOUT = 15.0  # seconds for a process to exit after SIGTERM
COMMAND_TIMEOUT = 60.0  # seconds for a one-shot command
ROOT = Path(__file__).resolve().parent.parent

SERVICE_MODULE = """
import logging

from minos.networks import Request, Response, enroute

logger = logging.getLogger("ledger")


class LedgerService:
    @enroute.broker.query("ledger.add")
    async def add(self, request: Request) -> Response:
        logger.warning("adding %s", await request.content())
        return Response({"id": str(request.raw.identifier)})
"""

CONFIG = """
name: ledger
interfaces:
  broker:
    endpoint: inproc://ledger
    bind: ["{endpoint}"]
    heartbeat_interval: 0.2
    close_timeout: 1
  http:
    port: 0
    shutdown_timeout: 1
    metrics: true
services:
  - cli_ledger_service.LedgerService
"""


@pytest.fixture
def workdir(short_dir):
    """A directory for the service module, its config and a broker socket (short enough for ipc)."""
    path = short_dir
    (path / "cli_ledger_service.py").write_text(SERVICE_MODULE)
    (path / "service.yml").write_text(CONFIG.format(endpoint=f"ipc://{path / 'service.sock'}"))
    return path


def environment(workdir):
    env = {key: value for key, value in os.environ.items() if not key.startswith("MINOS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))
    return env


class Process(CliProcess):
    """``minos-networks ARGS`` run in ``workdir``; a line is waited for ``LINE_TIMEOUT`` unless told otherwise."""

    def __init__(self, workdir, *args):
        super().__init__(
            args,
            env=environment(workdir),
            stderr_path=workdir / f"{args[0]}.stderr",
            stop_timeout=STOP_TIMEOUT,
        )

    def wait_line(self, prefix, timeout=LINE_TIMEOUT, *, where=lambda line: True):
        return super().wait_line(prefix, timeout, where=where)


@pytest.fixture
def processes():
    started = []

    def start(workdir, *args):
        process = Process(workdir, *args)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.reap()


def words(line):
    """The ``key=value`` words of a stats line."""
    return dict(word.split("=", 1) for word in line.split() if "=" in word)


async def publish(endpoint, topic, count):
    config = Config(
        {"name": "stats-test", "interfaces": {"broker": {"endpoint": endpoint, "embedded": False}}}
    )
    async with BrokerPublisher.from_config(config) as publisher:
        for number in range(count):  # send returns once the broker has accepted the message
            await publisher.send(BrokerMessageV1(topic, BrokerMessageV1Payload({"n": number})))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_broker_stats_prints_a_line_per_interval_and_stops_cleanly_on_a_signal(workdir, processes, signum):
    endpoint = f"ipc://{workdir / 'broker.sock'}"
    broker = processes(workdir, "broker", "--bind", endpoint, "--stats", "--stats-interval", "0.1")
    broker.wait_line("minos-networks broker: serving on", START_TIMEOUT)
    first = words(broker.wait_line("minos-networks broker stats:"))
    assert first["published"] == "0"
    for key in ("published/s", "delivered/s", "acked/s", "held", "queued", "deepest", "peers", "redelivered"):
        assert key in first
    for key in ("refused", "lost_peers", "rejected", "unknown_peer", "cut_off", "refused_handshakes"):
        assert first[key] == "0"

    asyncio.run(publish(endpoint, "stats.topic", 7))

    # Nobody subscribes, so the broker holds all seven (unclaimed: in no group's queue yet).
    line = broker.wait_line(
        "minos-networks broker stats:", where=lambda line: words(line)["published"] == "7"
    )
    assert words(line)["held"] == "7"
    assert broker.stop(signum) == 0, broker.diagnostics()
    broker.wait_line("minos-networks broker: stopped; published 7")


def test_broker_logs_as_json_with_the_service_name(workdir, processes):
    broker = processes(
        workdir,
        "broker",
        "--bind",
        f"ipc://{workdir / 'b.sock'}",
        "--log-level",
        "info",
        "--log-format",
        "json",
    )
    broker.wait_line("minos-networks broker: serving on", START_TIMEOUT)
    assert broker.stop() == 0, broker.diagnostics()
    records = [json.loads(line) for line in broker.stderr().splitlines()]
    serving = next(record for record in records if record["message"].startswith("broker serving on"))
    assert (serving["level"], serving["service"]) == ("INFO", "broker")
    assert serving["logger"] == "minos.networks.transports.broker"


async def scrape(url):
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"{url}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_run_logs_handler_records_as_json_with_the_message_id_and_serves_metrics(workdir, processes):
    service = processes(workdir, "run", workdir / "service.yml", "--log-format", "json")
    ready = service.wait_line("minos-networks run: ledger ready", START_TIMEOUT)
    url = words(ready)["http"]
    added = ("minos_messages_handled_total", (("topic", "ledger.add"),))
    assert asyncio.run(scrape(url))[added] == 0

    reply = subprocess.run(
        [
            sys.executable,
            "-m",
            "minos.networks",
            "publish",
            workdir / "service.yml",
            "ledger.add",
            "5",
            "--wait-reply",
        ],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env=environment(workdir),
    )
    assert reply.returncode == 0, reply.stderr
    identifier = json.loads(reply.stdout)["content"]["id"]

    assert asyncio.run(scrape(url))[added] == 1  # counted before the reply was sent
    assert service.stop() == 0, service.diagnostics()
    records = [json.loads(line) for line in service.stderr().splitlines() if line.startswith("{")]
    [record] = [record for record in records if record["logger"] == "ledger"]
    assert record["message"] == "adding 5"
    assert (record["message_id"], record["topic"], record["service"]) == (identifier, "ledger.add", "ledger")


def test_bench_runs_the_benchmarks_of_the_source_tree_passing_its_arguments(tmp_path):
    results = tmp_path / "codec.json"
    completed = subprocess.run(
        [sys.executable, "-m", "minos.networks", "bench", "--quick", "codec", "--json", "codec.json"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        cwd=tmp_path,  # found through the package's own source tree; relative paths stay the caller's
    )
    assert completed.returncode == 0, completed.stderr
    assert "encode+decode" in completed.stdout
    assert [result["scenario"] for result in json.loads(results.read_text())] == ["codec"] * 3


def test_bench_passes_the_usage_exit_code_of_the_benchmarks_through():
    completed = subprocess.run(
        [sys.executable, "-m", "minos.networks", "bench", "--quick", "nope"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert completed.returncode == 2
    assert "unknown scenario 'nope'" in completed.stderr


def test_bench_without_a_benchmarks_folder_exits_one_saying_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(showcase, "benchmark_roots", lambda: [tmp_path])
    assert cli.main(["bench", "--quick", "codec"]) == 1
    error = capsys.readouterr().err
    assert "no benchmarks/ folder here: the benchmarks ship with the source tree" in error
    assert str(tmp_path) in error
    assert (ROOT / "benchmarks" / "__main__.py").is_file()  # the real tree has one: the other tests use it
