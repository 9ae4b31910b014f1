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
