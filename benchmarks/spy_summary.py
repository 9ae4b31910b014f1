"""Summarise a py-spy ``--format raw`` profile: where the samples are, by thread and by function.

``python -m benchmarks.spy_summary PROFILE.txt [--top N] [--within TEXT] [--skip TEXT]``

A raw profile (``py-spy record --format raw``) has one line per distinct stack: the frames from the
outermost to the innermost, separated by ``;``, then a space and how many samples had that stack.
With ``--subprocesses`` the first frames name the process and its parents (``process PID:"COMMAND"``);
with ``--threads`` the next one names the thread (``thread (TID): NAME``); with ``--gil`` only samples
of the thread holding the GIL are kept, so the shares below are shares of the interpreter's busy time.

Printed: the samples in all; each thread by share, named by the function it was started with (the
first frame below ``threading``'s bootstrap, or the outermost one); the functions by *self* share
(samples where they were the innermost frame: where the time is spent) and by *total* share (samples
where they were on the stack at all: what the time is spent for; the event loop's and the runner's own
frames, on nearly every stack, are left out). Functions are ``name (file)``, the line numbers dropped
so that one function's lines add up.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Profile", "innermost_process", "main", "read_profile"]

_PLUMBING = ("(threading.py", "(<frozen runpy>", "(benchmarks/__main__.py", "(benchmarks/__init__.py")
"""Frames of the files that start threads and scenarios: a thread's entry is the first frame after them."""
_LOOPS = ("(asyncio/base_events.py", "(asyncio/events.py", "(asyncio/runners.py")
"""Event loop frames: on nearly every stack, so left out of the *total* ranking (they stay in *self*)."""


def _function(frame: str) -> str:
    """``name (file:line)`` -> ``name (file)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else name


def _process_label(frame: str) -> str:
    """``process PID:"python -m benchmarks.workers handler ipc://..."`` -> ``PID benchmarks.workers handler``."""
    head, _, command = frame.partition(":")
    words = command.strip('"').split()
    if "-m" in words:
        words = words[words.index("-m") + 1 :][:2]
    return f"{head.removeprefix('process ')} {' '.join(words[:2])}"


def innermost_process(stack: str) -> str:
    """The label of the process a raw stack was sampled in (``--subprocesses``), or ``""``."""
    processes = [frame for frame in stack.split(";") if frame.startswith("process ")]
    return _process_label(processes[-1]) if processes else ""


def _entry(frames: Sequence[str]) -> str:
    """What a thread runs: its first frame below threading's bootstrap (or below the runner's own)."""
    for frame in frames:
        if not any(plumbing in frame for plumbing in _PLUMBING):
            return _function(frame)
    return _function(frames[-1]) if frames else "?"


@dataclass
class Profile:
    """Sample counts of a raw profile, by thread and by function."""

    samples: int = 0
    threads: Counter[str] = field(default_factory=Counter)
    thread_entries: dict[str, Counter[str]] = field(default_factory=dict)
    thread_names: dict[str, str] = field(default_factory=dict)
    own: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)

    def add(self, frames: Sequence[str], count: int) -> None:
        """Count ``count`` samples of the stack ``frames`` (outermost first, thread frame included)."""
        process = ""
        while frames and frames[0].startswith("process "):  # --subprocesses: the parent chain, then ours
            process, frames = _process_label(frames[0]), frames[1:]
        thread, rest = (
            (frames[0], frames[1:]) if frames and frames[0].startswith("thread (") else ("", frames)
        )
        # "thread (TID): NAME" once py-spy knows the name, "thread (TID)" before: one thread either way.
        thread, _, name = thread.partition(": ")
        thread = f"{process} {thread}".strip()
        if name:
            self.thread_names[thread] = name
        self.samples += count
        self.threads[thread] += count
        self.thread_entries.setdefault(thread, Counter())[_entry(rest)] += count
        functions = [_function(frame) for frame in rest]
        if functions:
            self.own[functions[-1]] += count
        for function in set(functions):
            if not any(plumbing in function for plumbing in (*_PLUMBING, *_LOOPS)):
                self.total[function] += count

    def thread_name(self, thread: str) -> str:
        """The thread's id and name, and the entry function most of its samples ran under."""
        entry = self.thread_entries[thread].most_common(1)[0][0]
        name = self.thread_names.get(thread, "")
        return f"{thread or 'all'}{f' {name}' if name else ''}: {entry}"


def read_profile(
    lines: Iterable[str],
    *,
    within: str | None = None,
    skip: Sequence[str] = (),
    process: str | None = None,
) -> Profile:
    """Count the stacks of a raw profile.

    Args:
        lines: The profile's lines.
        within: Keep only stacks with a frame containing this text (e.g. the timed function).
        skip: Drop stacks with a frame containing any of these texts (e.g. the ceiling's threads).
        process: With ``--subprocesses`` profiles, keep only the stacks of the processes whose label
            (``PID module role``, e.g. ``1234 benchmarks.workers handler``) contains this text.
    """
    profile = Profile()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if within is not None and within not in stack:
            continue
        if any(text in stack for text in skip):
            continue
        if process is not None and process not in innermost_process(stack):
            continue
        profile.add(stack.split(";"), int(count))
    return profile


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.spy_summary", description=__doc__.split("\n")[0]
    )
    parser.add_argument("profile", type=Path, help="a py-spy record --format raw output file")
    parser.add_argument("--top", type=int, default=12, help="functions listed in each ranking (12)")
    parser.add_argument("--within", help="keep only stacks with a frame containing this text")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        help="drop stacks with a frame containing this text (repeatable)",
    )
    parser.add_argument(
        "--process",
        help="(--subprocesses profiles) keep only processes whose 'PID module role' has this text",
    )
    args = parser.parse_args(argv)
    with args.profile.open(encoding="utf-8", errors="replace") as file:
        profile = read_profile(file, within=args.within, skip=args.skip, process=args.process)
    if not profile.samples:
        print(f"{args.profile}: no samples (with --within/--skip as given)", file=sys.stderr)
        return 1

    def share(count: int) -> str:
        return f"{100 * count / profile.samples:5.1f}%"

    print(f"{args.profile}: {profile.samples} samples")
    print("threads:")
    for thread, count in profile.threads.most_common():
        print(f"  {share(count)}  {profile.thread_name(thread)}")
    for title, ranking in (
        ("self (innermost frame)", profile.own),
        ("total (anywhere on the stack)", profile.total),
    ):
        print(f"functions by {title}:")
        for function, count in ranking.most_common(args.top):
            print(f"  {share(count)}  {function}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
