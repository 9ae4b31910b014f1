"""The benchmark runner works end to end; how fast is its business, not the tests'."""

import json
import subprocess
import sys
from pathlib import Path

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
