"""Unknown keys are configuration errors: ``check-config`` and ``run``, as real processes, exit 3 naming each.

Every wait is bounded: each command runs to its exit within COMMAND_TIMEOUT.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMAND_TIMEOUT = 30.0  # seconds for a one-shot command (or a `run` that refuses its config)

SERVICE_MODULE = """
from minos.networks import Request, Response, enroute


class KeyService:
    @enroute.broker.command("keys.ping")
    async def ping(self, request: Request) -> Response:
        return Response("pong")
"""

# One typo per section minos.networks owns: the YAML, the key printed, and the message after it.
SECTIONS = {
    "top level": ("nmae: typo", "nmae", "unknown key; did you mean 'name'?"),
    "interfaces": ("interfaces: {htpp: {port: 0}}", "interfaces.htpp", "unknown key; did you mean 'http'?"),
    "interfaces.broker": (
        "interfaces: {broker: {windw: 10}}",
        "interfaces.broker.windw",
        "unknown key; did you mean 'window'?",
    ),
    "interfaces.broker.durable": (
        "interfaces: {broker: {durable: {path: var/keys.sqlite, resend_afer: 5}}}",
        "interfaces.broker.durable.resend_afer",
        "unknown key; did you mean 'resend_after'?",
    ),
    "interfaces.broker.retries": (
        "interfaces: {broker: {retries: {max_attempt: 3}}}",
        "interfaces.broker.retries.max_attempt",
        "unknown key; did you mean 'max_attempts'?",
    ),
    "interfaces.broker.duplicates": (
        "interfaces: {broker: {duplicates: {tll: 60}}}",
        "interfaces.broker.duplicates.tll",
        "unknown key; did you mean 'ttl'?",
    ),
    "interfaces.broker.curve": (
        "interfaces: {broker: {curve: {server_public: abc}}}",
        "interfaces.broker.curve.server_public",
        "unknown key; did you mean 'server_public_key'?",
    ),
    "interfaces.broker.nats": (
        "interfaces: {broker: {nats: {server: 'nats://127.0.0.1:4222'}}}",
        "interfaces.broker.nats.server",
        "unknown key; did you mean 'servers'?",
    ),
    "interfaces.http": (
        "interfaces: {http: {port: 0, shutdown_timout: 1}}",
        "interfaces.http.shutdown_timout",
        "unknown key; did you mean 'shutdown_timeout'?",
    ),
    "interfaces.periodic": (
        "interfaces: {periodic: {stop_timeuot: 1}}",
        "interfaces.periodic.stop_timeuot",
        "unknown key; did you mean 'stop_timeout'?",
    ),
    "discovery": (
        "discovery: {client: memory, hots: localhost}",
        "discovery.hots",
        "unknown key; did you mean 'host'?",
    ),
    "logging": ("logging: {levle: INFO}", "logging.levle", "unknown key; did you mean 'level'?"),
    "spec": ("spec: {verison: 2.0.0}", "spec.verison", "unknown key; did you mean 'version'?"),
    "metrics": (
        "metrics: true",
        "metrics",
        "not read by minos.networks: the HTTP port serves the metrics: write interfaces.http.metrics: true",
    ),
    "a 0.7 leftover": (
        "interfaces: {broker: {host: localhost}}",
        "interfaces.broker.host",
        "not read by minos.networks: minos.networks reaches its broker at one URL: write "
        "interfaces.broker.endpoint: tcp://HOST:PORT (minos 0.7's v2 layout had the address in "
        "interfaces.broker.common, which is read as such)",
    ),
}


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "keys_service.py").write_text(SERVICE_MODULE)
    return tmp_path


def command(workdir, *args):
    """Run ``minos-networks ARGS`` in ``workdir`` to its end (bounded), without the caller's MINOS_ variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MINOS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "minos.networks", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env=env,
        cwd=workdir,
    )


def problem_lines(stderr, prefix):
    """The lines naming a problem, without the log lines (a 0.7 note) and the closing count."""
    return [line for line in stderr.splitlines() if line.startswith(f"{prefix}: ") and " has " not in line]


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_check_config_exits_three_naming_the_file_the_unknown_key_and_the_closest_known_key(workdir, section):
    body, key, message = SECTIONS[section]
    config = workdir / "keys.yml"
    config.write_text(f"name: keys\nservices: [keys_service.KeyService]\n{body}\n")

    result = command(workdir, "check-config", config)

    assert result.returncode == 3, result
    prefix = "minos-networks check-config"
    assert problem_lines(result.stderr, prefix) == [f"{prefix}: {config}: {key}: {message}"]
    assert (
        result.stderr.splitlines()[-1]
        == f"{prefix}: {config} has 1 configuration problem(s); nothing was started"
    )
    assert result.stdout == ""


ALL_SECTIONS = """\
name: keys
nmae: typo
metrics: true
services: [keys_service.KeyService]
interfaces:
  htpp: {port: 0}
  broker:
    windw: 10
    host: localhost
    durable: {path: var/keys.sqlite, resend_afer: 5}
    retries: {max_attempt: 3}
    duplicates: {tll: 60}
    curve: {server_public: abc}
    nats: {server: 'nats://127.0.0.1:4222'}
  http: {port: 0, shutdown_timout: 1}
  periodic: {stop_timeuot: 1}
discovery: {client: memory, hots: localhost}
logging: {levle: INFO}
spec: {verison: 2.0.0}
"""


def test_run_exits_three_before_starting_anything_naming_the_unknown_key_of_every_section(workdir):
    config = workdir / "keys.yml"
    config.write_text(ALL_SECTIONS)

    result = command(workdir, "run", config)

    assert result.returncode == 3, result
    prefix = "minos-networks run"
    order = [
        "top level",
        "metrics",
        "interfaces",
        "interfaces.broker",
        "a 0.7 leftover",
        "interfaces.broker.durable",
        "interfaces.broker.retries",
        "interfaces.broker.duplicates",
        "interfaces.broker.curve",
        "interfaces.broker.nats",
        "interfaces.http",
        "interfaces.periodic",
        "discovery",
        "logging",
        "spec",
    ]
    assert sorted(order) == sorted(SECTIONS)
    assert problem_lines(result.stderr, prefix) == [
        f"{prefix}: {config}: {SECTIONS[section][1]}: {SECTIONS[section][2]}" for section in order
    ]
    assert result.stderr.splitlines()[-1] == (
        f"{prefix}: {config} has {len(order)} configuration problem(s); nothing was started"
    )
    assert "ready" not in result.stdout
    assert not (workdir / "var").exists()  # no outbox store was opened


def test_a_misspelt_durable_section_is_refused_instead_of_running_without_an_outbox(workdir):
    config = workdir / "keys.yml"
    config.write_text(
        "name: keys\n"
        "services: [keys_service.KeyService]\n"
        "interfaces:\n"
        "  broker:\n"
        "    endpoint: inproc://keys\n"
        "    durabel: {path: var/keys.sqlite}\n"
    )

    for name in ("check-config", "run"):
        result = command(workdir, name, config)
        assert result.returncode == 3, result
        assert (
            f"minos-networks {name}: {config}: interfaces.broker.durabel: unknown key; did you mean 'durable'?"
            in result.stderr.splitlines()
        )
        assert "ready" not in result.stdout
    assert not (workdir / "var").exists()  # no store was opened


def test_every_problem_of_a_file_is_reported_not_the_first_per_section(workdir):
    config = workdir / "keys.yml"
    config.write_text(
        "name: keys\n"
        "nmae: typo\n"
        "services: [keys_service.KeyService]\n"
        "interfaces:\n"
        "  broker:\n"
        "    durabel: {path: var/keys.sqlite}\n"
        "    windw: 10\n"
        "    window: 0\n"
        "    retries: {max_attempt: 3, max_delai: 1}\n"
        "  http: {port: eighty, shutdown_timout: 1}\n"
        "logging: {level: LOUD, fromat: json}\n"
    )

    for name in ("check-config", "run"):
        result = command(workdir, name, config)
        assert result.returncode == 3, result
        prefix = f"minos-networks {name}: {config}"
        assert problem_lines(result.stderr, f"minos-networks {name}") == [
            f"{prefix}: nmae: unknown key; did you mean 'name'?",
            f"{prefix}: interfaces.broker.durabel: unknown key; did you mean 'durable'?",
            f"{prefix}: interfaces.broker.windw: unknown key; did you mean 'window'?",
            f"{prefix}: interfaces.broker.retries.max_attempt: unknown key; did you mean 'max_attempts'?",
            f"{prefix}: interfaces.broker.retries.max_delai: unknown key; did you mean 'max_delay'?",
            f"{prefix}: interfaces.http.shutdown_timout: unknown key; did you mean 'shutdown_timeout'?",
            f"{prefix}: logging.fromat: unknown key; did you mean 'format'?",
            # the values are checked too, past the unknown keys of their sections
            f"{prefix}: interfaces.broker: Config value window=0 under 'interfaces.broker' in {config} must be at least 1",
            f"{prefix}: interfaces.http.port: Config key 'interfaces.http.port' in {config} must be an int, "
            f"but found 'eighty' (str). Fix the value in {config}.",
            f"{prefix}: logging.level: Config key 'logging.level' in {config} must be one of DEBUG, INFO, "
            "WARNING, ERROR, CRITICAL, got 'LOUD'",
        ]
        assert result.stderr.splitlines()[-1] == (
            f"minos-networks {name}: {config} has 10 configuration problem(s); nothing was started"
        )


def test_the_readme_s_example_of_unknown_keys_is_what_check_config_prints(workdir):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("$ minos-networks check-config service.yml\n", 1)[1].split("```", 1)[0]
    (workdir / "service.yml").write_text(
        "name: keys\n"
        "interfaces:\n"
        "  broker: {endpoint: inproc://keys, durabel: {path: var/keys.sqlite}}\n"
        "logging: {levle: INFO}\n"
    )

    result = command(workdir, "check-config", "service.yml")

    assert result.returncode == 3
    assert result.stderr == block


@pytest.mark.parametrize("args", [["docs"], ["publish", "keys.ping", "null"]])
def test_docs_and_publish_refuse_unknown_keys_too(workdir, args):
    config = workdir / "keys.yml"
    config.write_text(
        "name: keys\n"
        "services: [keys_service.KeyService]\n"
        "interfaces: {broker: {endpoint: 'ipc:///nowhere', durabel: {}}}\n"
        "spec: {verison: 2.0.0}\n"
    )

    result = command(workdir, args[0], config, *args[1:])

    assert result.returncode == 3, result
    prefix = f"minos-networks {args[0]}"
    assert problem_lines(result.stderr, prefix) == [
        f"{prefix}: {config}: interfaces.broker.durabel: unknown key; did you mean 'durable'?",
        f"{prefix}: {config}: spec.verison: unknown key; did you mean 'version'?",
    ]
