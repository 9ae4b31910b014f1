"""The benchmark runner works end to end; how fast is its business, not the tests'."""

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {
    "scenario",
    "path",
    "messages",
    "seconds",
    "msgs_per_s",
    "ceiling_msgs_per_s",
    "ratio",
    "p50_us",
    "p99_us",
}


def run_benchmarks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_quick_codec_scenario_writes_its_results_as_json(tmp_path):
    path = tmp_path / "results.json"
    completed = run_benchmarks("--quick", "codec", "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    results = json.loads(path.read_text())
    assert [result["path"] for result in results] == ["encode+decode", "encode", "decode"]
    for result in results:
        assert result.keys() >= FIELDS
        assert result["scenario"] == "codec"
        assert result["msgs_per_s"] > 0
        assert result["ceiling_msgs_per_s"] > 0
        assert result["ratio"] == result["msgs_per_s"] / result["ceiling_msgs_per_s"]
    assert "encode+decode" in completed.stdout


def test_an_unknown_scenario_exits_2_listing_the_known_ones():
    completed = run_benchmarks("--quick", "nope")
    assert completed.returncode == 2
    assert "unknown scenario 'nope'; known: codec" in completed.stderr


END_TO_END = {  # scenario -> the paths it measures, in order
    "embedded-events": ["publisher -> inproc broker -> dispatcher -> handler"],
    "broker-events": ["publisher -> broker -> handler, 3 processes, ipc, acked"],
    "request-reply": [
        "client -> broker -> handler -> client, 3 processes, ipc, 1 in flight",
        "client -> broker -> handler -> client, 3 processes, ipc, 100 in flight",
    ],
}


@pytest.mark.slow  # broker, publisher and handler processes
def test_the_quick_end_to_end_scenarios_measure_every_path_next_to_its_ceiling(tmp_path):
    path = tmp_path / "results.json"
    completed = run_benchmarks("--quick", *END_TO_END, "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    results = json.loads(path.read_text())
    assert [(result["scenario"], result["path"]) for result in results] == [
        (scenario, name) for scenario, names in END_TO_END.items() for name in names
    ]
    for result in results:
        assert result.keys() >= FIELDS
        assert result["messages"] > 0
        assert result["seconds"] > 0
        assert result["msgs_per_s"] == result["messages"] / result["seconds"]
        assert result["ceiling_msgs_per_s"] > 0
        assert result["ratio"] == result["msgs_per_s"] / result["ceiling_msgs_per_s"]
        assert result["ceiling"].startswith("raw pyzmq+msgpack")
        if result["scenario"] == "request-reply":  # a latency per request; events measure throughput only
            assert 0 < result["p50_us"] <= result["p99_us"]
        else:
            assert (result["p50_us"], result["p99_us"]) == (None, None)
        if result["scenario"] == "embedded-events":  # one process: its CPU is both sides', not measured
            assert (result["cpu_us"], result["ceiling_cpu_us"]) == (None, None)
        else:  # the CPU of the processes of each side, per message
            assert result["cpu_us"] > 0
            assert result["ceiling_cpu_us"] > 0
    for scenario in END_TO_END:
        assert scenario in completed.stdout


def test_a_count_that_does_not_match_fails_the_scenario_loudly():
    completed = subprocess.run(
        [sys.executable, "-c", "from benchmarks.e2e import check_count; check_count('a -> b', 9, 10)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert "WorkerError: a -> b: 9 messages received for 10 sent (1 missing)" in completed.stderr


def test_the_quick_http_scenario_compares_the_port_with_bare_aiohttp(tmp_path):
    path = tmp_path / "results.json"
    completed = run_benchmarks("--quick", "http-rest", "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    results = json.loads(path.read_text())
    assert [result["scenario"] for result in results] == ["http-rest", "http-rest"]
    for result in results:
        assert result.keys() >= FIELDS
        assert result["msgs_per_s"] > 0
        assert result["ceiling_msgs_per_s"] > 0
        assert result["ceiling"].startswith("bare aiohttp server")


@pytest.mark.slow  # broker, publisher and handler processes
def test_the_quick_durable_scenario_compares_itself_with_the_raw_ceiling_and_with_plain_events(tmp_path):
    path = tmp_path / "durable.json"
    completed = run_benchmarks("--quick", "durable-events", "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    results = {result["scenario"]: result for result in json.loads(path.read_text())}
    assert sorted(results) == ["durable-events", "durable-events:broker-events"]
    raw, plain = results["durable-events"], results["durable-events:broker-events"]
    assert raw["ceiling"].startswith("raw pyzmq+msgpack")
    assert plain["ceiling"].startswith("broker-events")
    assert raw["msgs_per_s"] == plain["msgs_per_s"] > 0  # one durable measurement, two yardsticks
    for result in (raw, plain):
        assert result["ratio"] == result["msgs_per_s"] / result["ceiling_msgs_per_s"]
    assert raw["cpu_us"] == plain["cpu_us"] > 0  # the durable path's CPU, next to each yardstick's
    assert raw["ceiling_cpu_us"] > 0
    assert plain["ceiling_cpu_us"] > 0


def test_the_instruction_count_workload_runs_the_embedded_path_and_needs_valgrind(monkeypatch, capsys):
    from benchmarks import instructions
    from benchmarks.e2e import COUNTER

    before = COUNTER.total
    instructions.run_workload(50, durable=True)
    assert COUNTER.total - before == instructions.WARMUP + 50  # every event handled, none twice

    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    assert instructions.main(["--messages", "10"]) == 2
    assert "valgrind is not installed" in capsys.readouterr().err


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The chunks of a PNG, each (type, data), checking the signature and every chunk's CRC."""
    assert data.startswith(PNG_SIGNATURE), "not a PNG: wrong signature"
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


def test_the_plot_is_a_valid_png_naming_every_scenario_it_charts(tmp_path):
    path = tmp_path / "charts" / "results.png"
    completed = run_benchmarks("--quick", "codec", "dispatch", "--plot", str(path))
    assert completed.returncode == 0, completed.stderr
    assert f"chart written to {path}" in completed.stderr
    chunks = png_chunks(path.read_bytes())
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert width >= 600
    assert height >= 150
    text = dict(body.split(b"\0", 1) for kind, body in chunks if kind == b"tEXt")
    assert text[b"Scenarios"] == b"codec, dispatch"
    paths = text[b"Paths"].decode().splitlines()
    assert paths == ["codec: encode+decode", "codec: encode", "codec: decode", "dispatch: dispatch",
                     "dispatch: dispatch-middleware"]  # fmt: skip
    from PIL import Image  # matplotlib's own dependency: decodes every pixel

    with Image.open(path) as image:
        image.load()
        assert image.size == (width, height)


def test_the_progress_bar_shows_on_a_terminal_and_plain_lines_elsewhere(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.__main__ import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, expect_bar in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        with progress(2, disable=False) as advance:
            advance("codec")
            advance("dispatch")
        output = stream.getvalue()
        assert ("2/2" in output) is expect_bar, output
        assert ("running codec ..." in output) is not expect_bar, output


@pytest.mark.slow  # broker, publisher and handler processes
def test_the_quick_two_subscriber_scenario_shares_the_load_and_compares_itself_with_one_subscriber(tmp_path):
    path = tmp_path / "2sub.json"
    completed = run_benchmarks("--quick", "broker-events-2sub", "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    results = {result["scenario"]: result for result in json.loads(path.read_text())}
    assert sorted(results) == ["broker-events-2sub", "broker-events-2sub:1sub"]
    raw, solo = results["broker-events-2sub"], results["broker-events-2sub:1sub"]
    assert raw["ceiling"].startswith("raw pyzmq+msgpack")
    assert solo["ceiling"].startswith("broker-events with one handler")
    assert raw["msgs_per_s"] == solo["msgs_per_s"] == raw["messages"] / raw["seconds"] > 0
    for result in (raw, solo):
        assert result.keys() >= FIELDS
        assert result["ceiling_msgs_per_s"] > 0
        assert result["ratio"] == result["msgs_per_s"] / result["ceiling_msgs_per_s"]
        split = result["per_subscriber"]
        assert len(split) == 2
        assert sum(split) == result["messages"]  # every message handled once, by one of the two
        assert min(split) > 0  # both handled some: the group really shared the load
    assert "per_subscriber" in completed.stdout


@pytest.mark.slow  # broker, publisher and handler processes
def test_the_quick_backlog_scenario_measures_the_memory_of_a_held_backlog_and_drains_it(tmp_path):
    path = tmp_path / "backlog.json"
    completed = run_benchmarks("--quick", "backlog-memory", "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    results = {result["scenario"]: result for result in json.loads(path.read_text())}
    assert sorted(results) == ["backlog-memory", "backlog-memory:publish"]
    drain, publish = results["backlog-memory"], results["backlog-memory:publish"]
    for result in (drain, publish):
        assert result.keys() >= FIELDS
        assert result["messages"] == 50_000  # the quick backlog, all of it drained (the run checks counts)
        assert result["msgs_per_s"] == result["messages"] / result["seconds"] > 0
        assert result["ratio"] == result["msgs_per_s"] / result["ceiling_msgs_per_s"]
        assert result["ceiling"].startswith("raw pyzmq+msgpack")
    assert drain["ceiling_msgs_per_s"] == publish["ceiling_msgs_per_s"]  # one ceiling, two paths
    memory = [
        "broker_rss_before_mib",
        "broker_rss_mib",
        "broker_peak_rss_mib",
        "broker_bytes_per_message",
        "publisher_rss_before_mib",
        "publisher_peak_rss_mib",
    ]
    assert all(drain[name] > 0 for name in memory), {name: drain[name] for name in memory}
    assert drain["broker_rss_before_mib"] < drain["broker_rss_mib"] <= drain["broker_peak_rss_mib"]
    assert drain["publisher_rss_before_mib"] <= drain["publisher_peak_rss_mib"]
    # A queued event is its ~170 wire bytes plus bookkeeping: far below a kilobyte-sized leak per message.
    assert 100 < drain["broker_bytes_per_message"] < 2000
    assert all(publish[name] is None for name in memory)
    assert "broker_bytes_per_message" in completed.stdout


def test_the_table_shows_optional_columns_only_when_a_result_has_them(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import Result
    from benchmarks.__main__ import format_table

    plain = Result("s", "p", 10, 1.0, 10.0, 20.0, 0.5, "c")
    shared = Result("s", "q", 10, 1.0, 10.0, 20.0, 0.5, "c", per_subscriber=(4, 6))
    assert "per_subscriber" not in format_table([plain])
    table = format_table([plain, shared]).splitlines()
    assert table[0].split()[-1] == "per_subscriber"
    assert table[1].split()[-1] == "-"
    assert table[2].split()[-1] == "4/6"


def test_the_profile_summary_ranks_processes_threads_and_functions_of_a_raw_py_spy_profile(
    tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.spy_summary import main, read_profile

    broker = 'process 7:"/x/python -m minos.networks broker --bind ipc:///tmp/b"'
    raw = tmp_path / "raw.txt"
    raw.write_text(
        f'process 1:"python -m benchmarks broker-events";{broker};thread (7): MainThread;'
        "_run_module_as_main (<frozen runpy>:198);serve (a.py:10);route (b.py:3) 6\n"
        f'process 1:"python -m benchmarks broker-events";{broker};thread (7): MainThread;'
        "_run_module_as_main (<frozen runpy>:198);serve (a.py:12) 2\n"
        'process 1:"python -m benchmarks broker-events";thread (1): MainThread;run (c.py:1) 2\n'
    )
    profile = read_profile(raw.read_text().splitlines(), process="minos.networks broker")
    assert profile.samples == 8
    assert profile.own == {"route (b.py)": 6, "serve (a.py)": 2}  # line numbers folded into functions
    assert profile.total == {"route (b.py)": 6, "serve (a.py)": 8}  # runpy's frames left out
    assert [profile.thread_name(thread) for thread in profile.threads] == [
        "7 minos.networks broker thread (7) MainThread: serve (a.py)"
    ]
    assert read_profile(raw.read_text().splitlines(), skip=["route ("]).samples == 4
    assert main([str(raw), "--within", "nothing like it"]) == 1


PEER_SCENARIOS = {  # scenario -> the paths it measures, in order
    "peer-nats-events": ["publisher -> our broker process, ipc -> handler, acked; vs FastStream over nats"],
    "peer-redis-request-reply": [
        "client -> our broker process, ipc -> handler -> client, 1 in flight; vs FastStream over redis",
        "client -> our broker process, ipc -> handler -> client, 100 in flight; vs FastStream over redis",
    ],
}


def skip_unless_peer_servers(completed: subprocess.CompletedProcess[str]) -> None:
    """Skip when a peer scenario skipped itself (no server here); fail instead when ``CI`` is set."""
    skipped = [line for line in completed.stderr.splitlines() if ": skipped, " in line]
    if skipped:
        if os.environ.get("CI"):
            pytest.fail(f"{skipped[0]} (CI is set, so this fails instead of skipping)")
        pytest.skip(skipped[0])


def test_the_quick_peer_scenarios_measure_ours_as_a_ratio_of_faststream_in_the_same_run(tmp_path):
    pytest.importorskip("faststream", reason="the peers extra is not installed: pip install -e '.[peers]'")
    path = tmp_path / "peers.json"
    completed = run_benchmarks("--quick", *PEER_SCENARIOS, "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    skip_unless_peer_servers(completed)
    results = json.loads(path.read_text())
    assert [(result["scenario"], result["path"]) for result in results] == [
        (scenario, name) for scenario, names in PEER_SCENARIOS.items() for name in names
    ]
    for result in results:
        assert result["ceiling"].startswith("FastStream 0.")
        assert result["msgs_per_s"] == result["messages"] / result["seconds"] > 0
        assert result["ratio"] == result["msgs_per_s"] / result["ceiling_msgs_per_s"]  # ours / peer
        assert result["cpu_us"] > 0  # our publisher (or client) and handler processes
        assert result["ceiling_cpu_us"] > 0  # FastStream's
        assert result["server_cpu_us"] > 0  # our broker process
        if "request-reply" in result["scenario"]:  # latency on both sides
            assert 0 < result["p50_us"] <= result["p99_us"]
            assert 0 < result["ceiling_p50_us"] <= result["ceiling_p99_us"]
        else:
            assert result["ceiling_p50_us"] is None


def test_a_peer_scenario_without_its_server_prints_one_skip_line_and_the_run_goes_on(tmp_path):
    pytest.importorskip("faststream", reason="the peers extra is not installed: pip install -e '.[peers]'")
    path = tmp_path / "skipped.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--no-progress", "peer-rabbit-events", "codec",
         "--json", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MINOS_BENCH_RABBIT_URL": "amqp://guest:guest@127.0.0.1:1/"},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    skips = [line for line in completed.stderr.splitlines() if "skipped" in line]
    assert skips == ["peer-rabbit-events: skipped, no server answers at 127.0.0.1:1"]
    assert [result["scenario"] for result in json.loads(path.read_text())] == ["codec"] * 3


def test_every_peer_scenario_without_faststream_prints_one_skip_line_and_measures_nothing(
    monkeypatch, capsys
):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import SCENARIOS, peers

    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None)
    names = [name for name in SCENARIOS if name.startswith("peer-")]
    assert len(names) == 8  # events and request/reply over core NATS, JetStream, RabbitMQ, Redis
    for name in names:
        assert SCENARIOS[name](True) == []
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"{name}: skipped, FastStream is not installed (pip install -e '.[peers]')" for name in names
    ]


def test_the_quick_nats_events_scenario_also_measures_raw_nats_py_ceilings_on_the_same_server(tmp_path):
    path = tmp_path / "nats.json"
    completed = run_benchmarks("--quick", "nats-events", "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    skip_unless_peer_servers(completed)
    results = {result["scenario"]: result for result in json.loads(path.read_text())}
    assert sorted(results) == ["nats-events", "nats-events:core", "nats-events:jetstream"]
    assert results["nats-events"]["ceiling"].startswith("raw pyzmq+msgpack")
    for name in ("nats-events:core", "nats-events:jetstream"):
        result = results[name]
        assert result["ceiling"].startswith("raw nats-py")
        assert result["msgs_per_s"] == results["nats-events"]["msgs_per_s"]  # one measurement of ours
        assert result["ratio"] == result["msgs_per_s"] / result["ceiling_msgs_per_s"]
        assert result["cpu_us"] > 0
        assert result["ceiling_cpu_us"] > 0


def test_the_quick_nats_request_reply_scenario_measures_ours_against_raw_nats_py_and_raw_pyzmq(tmp_path):
    path = tmp_path / "nats-rr.json"
    completed = run_benchmarks("--quick", "nats-request-reply", "--json", str(path))
    assert completed.returncode == 0, completed.stderr
    skip_unless_peer_servers(completed)
    results = json.loads(path.read_text())
    paths = [
        f"client -> NATS JetStream (file) -> handler -> client, 3 processes, tcp, {n} in flight"
        for n in (1, 100)
    ]
    assert [(result["scenario"], result["path"]) for result in results] == [
        (scenario, name)
        for scenario in ("nats-request-reply", "nats-request-reply:zmq-ceiling")
        for name in paths
    ]
    for result in results:
        jetstream = result["scenario"] == "nats-request-reply"
        assert result["ceiling"].startswith("raw nats-py" if jetstream else "raw pyzmq+msgpack")
        assert result["ratio"] == result["msgs_per_s"] / result["ceiling_msgs_per_s"]
        assert 0 < result["p50_us"] <= result["p99_us"]
        assert 0 < result["ceiling_p50_us"] <= result["ceiling_p99_us"]
        for side in ("", "ceiling_"):  # the client and the handler apart, and their sum
            client, handler = result[f"{side}cpu_split_us"]
            assert client > 0
            assert handler > 0
            assert result[f"{side}cpu_us"] == client + handler
    for ours, zmq in zip(results[:2], results[2:], strict=True):  # one measurement of ours, two yardsticks
        assert (ours["msgs_per_s"], ours["cpu_us"]) == (zmq["msgs_per_s"], zmq["cpu_us"])
