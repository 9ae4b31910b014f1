"""Where a lone request's work goes, per process: counts per request, not seconds (issue 20, item 1).

``python -m benchmarks.lone_request_probe [--tool TOOL] [--requests N] [--warmup W]`` starts the three
processes of ``request-reply`` (a client process of its own here, the broker ``python -m minos.networks
broker``, a ``benchmarks.workers handler``), warms them up with W requests, then times N requests sent one
after the other (each awaited before the next) while TOOL watches every process, and prints per request:

- ``cpu`` (always): CPU microseconds per request of each process and of each of its threads (from
  ``/proc/PID/task/TID/schedstat``; noisy on a busy machine, but split by thread: the ZeroMQ I/O thread
  against the event loop's).
- ``--tool strace``: system calls per request of each thread (``strace -f -ff -p PID`` attached after the
  warm-up, detached at the end): wake-ups (``epoll_wait``, ``poll``), the ZeroMQ signalers' eventfd
  ``read``/``write``, socket ``sendto``/``recvfrom``, ``futex`` (a thread waking another), ``getpid``.
  strace slows every system call down, so what coalesces by timing may coalesce differently.
- ``--tool callgrind``: instructions per request of each process (every thread, user space), each process
  under ``valgrind --tool=callgrind``, counters zeroed after the warm-up (``callgrind_control -z``) and
  dumped at the end; with the calls per request of the C functions that stand for Python-level events
  (``CALLGRIND_CALLS``: uvloop timers, ``call_soon``, futures, task steps, loop iterations, zmq sends,
  receives and polls, exceptions raised, ``getpid``). Deterministic to about a percent (heartbeats, about
  one a second per peer, count too: the run lasts minutes under valgrind; and what coalesces by timing).
- ``--tool calls``: Python calls per request of each thread: a profiler (``sys.setprofile`` and
  ``threading.setprofile``, from a ``sitecustomize`` put on ``PYTHONPATH``) counts every Python function
  and builtin called between two signals (not Cython methods: uvloop's and pyzmq's are invisible to it).
- ``--tool py-spy``: ``py-spy record --native --threads`` on each process during the timed requests (raw
  collapsed stacks in the output directory; read them with ``benchmarks.spy_summary``). py-spy
  over-weights system calls (see ``benchmarks/README.md``).

``--ceiling`` runs the raw pyzmq processes of the ``request-reply`` ceiling instead, with the same tools.
``PROBE_CPROFILE=FILE`` profiles the client's timed requests with cProfile (wall time, its one thread).

Nothing here changes the library; the numbers of the commits of issue 20 come from it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.e2e import (
    Worker,
    Workers,
    broker_config,
    command_messages,
    ipc_directory,
    percentiles,
    plain_messages,
    worker_argv,
)
from minos.networks.cli.broker import READY_LINE

__all__ = ["main"]

TOOLS = ("none", "strace", "callgrind", "calls", "py-spy")
SLOW = {
    "none": 1.0,
    "strace": 5.0,
    "calls": 5.0,
    "callgrind": 80.0,
    "py-spy": 2.0,
}  # how much each tool slows a request

_SITECUSTOMIZE = '''
"""Counts Python and C calls per thread between SIGUSR1 (start) and SIGUSR2 (stop, write CALLS_OUT/PID)."""
import os, signal, sys, threading
from collections import Counter

_counts = Counter()
_active = False


def _profile(frame, event, arg):
    if not _active:
        return
    if event == "call":
        code = frame.f_code
        _counts[(threading.get_ident(), "py", f"{code.co_qualname} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})")] += 1
    elif event == "c_call":
        name = getattr(arg, "__qualname__", None) or repr(arg)
        owner = getattr(arg, "__self__", None)
        if owner is not None and not isinstance(owner, type(sys)):
            name = f"{type(owner).__name__}.{getattr(arg, '__name__', name)}"
        _counts[(threading.get_ident(), "c", name)] += 1


def _start(signum, frame):
    global _active
    _counts.clear()
    _active = True


def _stop(signum, frame):
    global _active
    _active = False
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    with open(os.path.join(os.environ["CALLS_OUT"], str(os.getpid())), "w") as out:
        for (ident, kind, name), count in _counts.most_common():
            out.write(f"{count}\\t{names.get(ident, ident)}\\t{kind}\\t{name}\\n")


signal.signal(signal.SIGUSR1, _start)
signal.signal(signal.SIGUSR2, _stop)
sys.setprofile(_profile)
threading.setprofile(_profile)
'''

WATCHED_CALLS = (
    "call_soon_threadsafe",
    "call_soon",
    "call_later",
    "call_at",
    "create_future",
    "create_task",
    "add_done_callback",
    "set_result",
    "Socket.recv",
    "Socket.send",
    "Socket.get",
    "get_running_loop",
    "perf_counter",
    "monotonic",
    "copy_context",
)


# The client process -----------------------------------------------------------------------------------


async def _client(endpoint: str, warmup: int) -> None:
    from minos.common import Config
    from minos.networks import BrokerClient

    client = BrokerClient.from_config(
        Config({"name": "probe-client", "interfaces": {"broker": broker_config(endpoint)}})
    )
    await client.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def one_at_a_time(count: int) -> list[int]:
        latencies = []
        clock = time.perf_counter_ns
        for request in command_messages(count):
            sent = clock()
            await client.send(request)
            reply = await client.receive()
            latencies.append(clock() - sent)
            if reply.identifier != request.identifier:
                raise RuntimeError(f"the reply to {request.identifier} answers {reply.identifier}")
        return latencies

    try:
        await one_at_a_time(warmup)
        print("ready", flush=True)
        while line := await reader.readline():
            words = line.decode().split()
            if words and words[0] == "go":
                profile = cProfile.Profile() if os.environ.get("PROBE_CPROFILE") else None
                if profile is not None:
                    profile.enable()
                p50, p99 = percentiles(await one_at_a_time(int(words[1])))
                if profile is not None:
                    profile.disable()
                    profile.dump_stats(os.environ["PROBE_CPROFILE"])
                print(f"done {p50:.1f} {p99:.1f}", flush=True)
    finally:
        transport.close()
        await client.stop()


def _raw_client(front: str, warmup: int) -> None:
    """The ceiling's client: a DEALER sending a packed dict and awaiting its echo, one at a time."""
    import msgpack
    import zmq

    from benchmarks.e2e import wire_size

    size = wire_size(command_messages(1)[0].with_reply_topic("probe-client.reply." + 32 * "0"))
    context: zmq.Context[Any] = zmq.Context()
    socket: zmq.Socket[bytes] = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(front)
    send, recv, packb, unpackb = socket.send, socket.recv, msgpack.packb, msgpack.unpackb

    def one_at_a_time(count: int) -> list[int]:
        latencies = []
        clock = time.perf_counter_ns
        for payload in plain_messages(count, size):
            sent = clock()
            send(packb(payload))
            reply = unpackb(recv())
            latencies.append(clock() - sent)
            if reply["i"] != payload["i"]:
                raise RuntimeError("a reply answers another request")
        return latencies

    one_at_a_time(warmup)
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words and words[0] == "go":
            p50, p99 = percentiles(one_at_a_time(int(words[1])))
            print(f"done {p50:.1f} {p99:.1f}", flush=True)
    socket.close()
    context.term()


# Reading what the tools wrote -------------------------------------------------------------------------


def _threads(pid: int) -> dict[int, tuple[str, int]]:
    """Each thread of ``pid``: its name and CPU nanoseconds so far."""
    threads = {}
    for task in os.scandir(f"/proc/{pid}/task"):
        try:
            name = Path(task.path, "comm").read_text().strip()
            threads[int(task.name)] = (name, int(Path(task.path, "schedstat").read_text().split()[0]))
        except OSError:
            continue
    return threads


def _strace_counts(path: Path) -> Counter[str]:
    """System calls started, by name, in one ``strace -ff`` output file."""
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("<...") or line.startswith("+++") or line.startswith("---"):
            continue
        name = line.split("(", 1)[0].strip()
        if name and name.isidentifier():
            counts[name] += 1
    return counts


CALLGRIND_CALLS = {
    "timers (uvloop call_later, call_at)": (
        "__pyx_pw_6uvloop_4loop_4Loop_17call_later",
        "__pyx_pw_6uvloop_4loop_4Loop_19call_at",
    ),
    "call_soon": ("__pyx_pw_6uvloop_4loop_4Loop_13call_soon",),
    "call_soon_threadsafe": ("__pyx_pw_6uvloop_4loop_4Loop_15call_soon_threadsafe",),
    "futures (create_future)": ("__pyx_pw_6uvloop_4loop_4Loop_37create_future",),
    "tasks (create_task)": ("__pyx_pw_6uvloop_4loop_4Loop_39create_task",),
    "task steps": ("task_step",),
    "zmq_msg_send": ("zmq_msg_send",),
    "zmq_msg_recv": ("zmq_msg_recv",),
    "zmq_getsockopt": ("zmq_getsockopt",),
    "zmq_poll": ("zmq_poll",),
    "exceptions raised (PyErr_SetObject)": ("_PyErr_SetObject",),
    "getpid": ("getpid",),
    "loop iterations (uv__io_poll)": ("uv__io_poll",),
}
"""What the callgrind tool counts calls of, per request: C functions that stand for a Python-level event."""


def _callgrind_read(directory: Path, name: str, pid: int) -> tuple[int, Counter[str]]:
    """The instructions of the last dump of ``name`` (process ``pid``), and the calls of each function in it."""
    dumps = sorted(directory.glob(f"{name}.{pid}.*"), key=lambda path: path.stat().st_mtime)
    total = None
    names: dict[str, str] = {}
    calls: Counter[str] = Counter()
    target = ""
    for line in dumps[-1].read_text().splitlines():
        if line.startswith("summary:"):
            total = int(line.split()[1])
        elif line.startswith(("fn=(", "cfn=(")):
            ident, _, function = line.split("=", 1)[1].partition(" ")
            if function:
                names[ident] = function
            if line.startswith("cfn="):
                target = names.get(ident, ident)
        elif line.startswith("calls="):
            calls[target] += int(line.split("=", 1)[1].split()[0])
    if total is None:
        raise RuntimeError(f"no summary line in {dumps[-1]}")
    return total, calls


# The orchestrator -------------------------------------------------------------------------------------


def _prefix(tool: str, directory: Path, name: str) -> list[str]:
    if tool == "callgrind":
        return [
            "valgrind",
            "--tool=callgrind",
            "--dump-instr=no",
            f"--callgrind-out-file={directory}/{name}.%p",
            f"--log-file={directory}/{name}.log",
        ]
    return []


def run(tool: str, requests: int, warmup: int, ceiling: bool = False) -> None:
    """Start the three processes, warm them up, count what ``requests`` lone requests cost in each.

    With ``ceiling``, the raw pyzmq processes of the request-reply ceiling instead (a DEALER client, a
    ROUTER<->DEALER relay, a DEALER echo), so the same counts say what the floor is.
    """
    out = Path(tempfile.mkdtemp(prefix="probe-"))
    if tool == "calls":
        (out / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        os.environ["PYTHONPATH"] = os.pathsep.join([str(out), os.environ.get("PYTHONPATH", "")])
        os.environ["CALLS_OUT"] = str(out)
    slow = SLOW[tool]
    with ipc_directory() as ipc, Workers() as workers:
        endpoint = f"ipc://{ipc}/broker"
        back = f"ipc://{ipc}/back"
        if ceiling:
            broker_argv, ready = worker_argv("raw-queue", endpoint, back), "ready"
            handler_argv = worker_argv("raw-echo", back)
        else:
            broker_argv = [sys.executable, "-m", "minos.networks", "broker", "--bind", endpoint]
            ready, handler_argv = READY_LINE, worker_argv("handler", endpoint)
        broker = workers.start(
            Worker("broker", [*_prefix(tool, out, "broker"), *broker_argv], ready=ready, stdin=False)
        )
        broker.wait_ready(20 * slow)
        handler = workers.start(
            Worker(
                "handler", [*_prefix(tool, out, "handler"), *handler_argv], ready="ready", stdin=not ceiling
            )
        )
        handler.wait_ready(20 * slow)
        role = "--raw-client" if ceiling else "--client"
        client_argv = [sys.executable, "-m", "benchmarks.lone_request_probe", role, endpoint, str(warmup)]
        client = workers.start(Worker("client", [*_prefix(tool, out, "client"), *client_argv], ready="ready"))
        client.wait_ready(20 * slow + warmup * 0.002 * slow)
        processes = {"client": client, "broker": broker, "handler": handler}
        pids = {name: worker.process.pid for name, worker in processes.items()}

        tracers: list[subprocess.Popen[bytes]] = []
        if tool == "strace":
            for name, pid in pids.items():
                tracer = subprocess.Popen(
                    ["strace", "-f", "-ff", "-o", str(out / f"strace-{name}"), "-p", str(pid)],
                    stderr=subprocess.PIPE,
                )
                tracers.append(tracer)
                assert tracer.stderr is not None
                while b"attached" not in tracer.stderr.readline():  # "Process PID attached with N threads"
                    pass
        elif tool == "py-spy":
            spy = str(Path(sys.executable).parent / "py-spy")
            for name, pid in pids.items():
                argv = [spy, "record", "--pid", str(pid), "--rate", "500", "--format", "raw", "--native"]
                tracers.append(
                    subprocess.Popen(
                        [*argv, "--threads", "-o", str(out / f"py-spy-{name}.txt")],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(1)  # sync-ok: py-spy prints nothing when it has attached
        elif tool == "callgrind":
            for pid in pids.values():
                subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
        elif tool == "calls":
            for pid in pids.values():
                os.kill(pid, signal.SIGUSR1)

        before = {name: _threads(pid) for name, pid in pids.items()}
        answer = client.ask(f"go {requests}", "done", 30 * slow + requests * 0.003 * slow)
        after = {name: _threads(pid) for name, pid in pids.items()}

        if tool in ("strace", "py-spy"):
            for tracer in tracers:
                tracer.send_signal(signal.SIGINT)
            for tracer in tracers:
                tracer.wait(30)
        elif tool == "callgrind":
            for pid in pids.values():
                subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
        elif tool == "calls":
            for pid in pids.values():
                os.kill(pid, signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not all((out / str(pid)).exists() for pid in pids.values()) and time.monotonic() < deadline:
                time.sleep(0.1)  # sync-ok: polling for files other processes write on a signal
            time.sleep(0.5)  # sync-ok: let the last writer finish its file

    p50, p99 = answer.split()
    print(
        f"{requests} lone requests{' (raw ceiling)' if ceiling else ''}, tool {tool}: client-side p50 {p50} us, p99 {p99} us (tool-slowed)"
    )
    print(f"outputs in {out}")
    for name, pid in pids.items():
        threads = after[name]
        total = sum(cpu - before[name].get(tid, ("", 0))[1] for tid, (_, cpu) in threads.items())
        split = ", ".join(
            f"{thread} {(cpu - before[name].get(tid, ('', 0))[1]) / requests / 1000:.1f}"
            for tid, (thread, cpu) in sorted(threads.items())
            if cpu - before[name].get(tid, ("", 0))[1] > requests * 1000
        )
        print(f"\n== {name} (pid {pid}): CPU {total / requests / 1000:.1f} us per request ({split})")
        if tool == "strace":
            for path in sorted(out.glob(f"strace-{name}.*")):
                tid = int(path.suffix[1:])
                counts = _strace_counts(path)
                if not counts:
                    continue
                thread = threads.get(tid, ("?", 0))[0]
                total_calls = sum(counts.values())
                listed = ", ".join(f"{call} {count / requests:.2f}" for call, count in counts.most_common(12))
                print(f"  {thread} ({tid}): {total_calls / requests:.2f} syscalls/request: {listed}")
        elif tool == "callgrind":
            total, calls = _callgrind_read(out, name, pid)
            print(f"  instructions per request: {total / requests:,.0f}")
            for what, functions in CALLGRIND_CALLS.items():
                count = sum(calls[function] for function in functions)
                print(f"    {what}: {count / requests:.2f}")
        elif tool == "calls":
            _print_calls(out / str(pid), requests)


def _print_calls(path: Path, requests: int) -> None:
    per_thread: dict[str, Counter[str]] = {}
    for line in path.read_text().splitlines():
        calls, thread, kind, name = line.split("\t", 3)
        per_thread.setdefault(thread, Counter())[f"{kind} {name}"] += int(calls)
    for thread, counts in per_thread.items():
        python = sum(count for key, count in counts.items() if key.startswith("py "))
        native = sum(count for key, count in counts.items() if key.startswith("c "))
        if python + native < requests:
            continue
        print(
            f"  thread {thread}: {python / requests:.1f} Python calls, {native / requests:.1f} C calls per request"
        )
        watched = ", ".join(
            f"{key[2:]} {count / requests:.2f}"
            for key, count in sorted(counts.items())
            if key.startswith("c ") and any(key.endswith(w) for w in WATCHED_CALLS)
        )
        print(f"    watched: {watched}")
        for key, count in counts.most_common(40):
            print(f"    {count / requests:7.2f}  {key}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.lone_request_probe", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--tool", choices=TOOLS, default="none")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--ceiling", action="store_true", help="measure the raw pyzmq ceiling's processes")
    parser.add_argument("--client", nargs=2, metavar=("ENDPOINT", "WARMUP"), help=argparse.SUPPRESS)
    parser.add_argument("--raw-client", nargs=2, metavar=("FRONT", "WARMUP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from minos.networks.actors import run_main
    from minos.networks.system import tune_gc

    if args.client is not None:
        tune_gc()
        run_main(_client(args.client[0], int(args.client[1])))
        return 0
    if args.raw_client is not None:
        tune_gc()
        _raw_client(args.raw_client[0], int(args.raw_client[1]))
        return 0
    run(args.tool, args.requests, args.warmup, args.ceiling)
    return 0


if __name__ == "__main__":
    sys.exit(main())
