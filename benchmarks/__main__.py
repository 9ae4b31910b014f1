"""The benchmark command: ``python -m benchmarks [--quick] [--json PATH] [--plot PATH] [SCENARIO ...]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from benchmarks import SCENARIOS, Result

COLUMNS = [
    ("scenario", "{}"),
    ("path", "{}"),
    ("messages", "{:,}"),
    ("seconds", "{:.3f}"),
    ("msgs_per_s", "{:,.0f}"),
    ("ceiling_msgs_per_s", "{:,.0f}"),
    ("ratio", "{:.2f}"),
    ("p50_us", "{:.1f}"),
    ("p99_us", "{:.1f}"),
]
OPTIONAL_COLUMNS = [  # shown only when a result has them: most scenarios do not measure these
    ("cpu_us", "{:.1f}"),
    ("ceiling_cpu_us", "{:.1f}"),
    ("ceiling_p50_us", "{:.1f}"),
    ("ceiling_p99_us", "{:.1f}"),
    ("server_cpu_us", "{:.1f}"),
    ("ceiling_server_cpu_us", "{:.1f}"),
    ("cpu_split_us", "{}"),
    ("ceiling_cpu_split_us", "{}"),
    ("per_subscriber", "{}"),
    ("broker_rss_before_mib", "{:.1f}"),
    ("broker_rss_mib", "{:.1f}"),
    ("broker_peak_rss_mib", "{:.1f}"),
    ("broker_bytes_per_message", "{:.0f}"),
    ("publisher_rss_before_mib", "{:.1f}"),
    ("publisher_peak_rss_mib", "{:.1f}"),
]


def _cell(value: object, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return "/".join(map(str, value))
    return spec.format(value)


def format_table(results: Sequence[Result]) -> str:
    """The results as a plain table, one row each, columns aligned."""
    dicts = [result.to_dict() for result in results]
    columns = COLUMNS + [
        (name, spec) for name, spec in OPTIONAL_COLUMNS if any(values[name] is not None for values in dicts)
    ]
    rows = [[name for name, _ in columns]]
    for values in dicts:
        rows.append([_cell(values[name], spec) for name, spec in columns])
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width) in
                       enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure minos.networks' paths as ratios of their ceiling, measured in the same run.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer messages: a smoke run, not a measurement")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH as a JSON list")
    parser.add_argument(
        "--plot", metavar="PATH", help="also draw the results next to their ceilings as a PNG chart at PATH"
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (there is none when stderr is not a terminal)",
    )
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"what to run (default: all): {', '.join(SCENARIOS)}"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(map(repr, unknown))}; known: {', '.join(SCENARIOS)}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401 (checked before minutes of measuring, used by benchmarks.plot)
        except ImportError:
            parser.error("--plot needs matplotlib: pip install -e '.[test]' (make install does)")

    from minos.networks.system import tune_gc

    tune_gc()  # as every process of a service run by minos-networks does; the worker processes do it too
    results: list[Result] = []
    names = args.scenarios or list(SCENARIOS)
    with progress(len(names), disable=args.no_progress) as advance:
        for name in names:
            advance(f"{name}{' (quick)' if args.quick else ''}")
            results.extend(SCENARIOS[name](args.quick))
    print(format_table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump([result.to_dict() for result in results], file, indent=2)
            file.write("\n")
    if args.plot:
        from benchmarks.plot import plot_results

        print(f"chart written to {plot_results(results, args.plot)}", file=sys.stderr)
    return 0


@contextmanager
def progress(total: int, *, disable: bool) -> Iterator[Callable[[str], None]]:
    """A tqdm bar over the scenarios on stderr when it is a terminal; plain ``running ...`` lines otherwise.

    Yields a function to call as each scenario starts, with its name.
    """
    try:
        from tqdm import tqdm
    except ImportError:  # installed without the test extra: lines are enough
        tqdm = None
    if disable or tqdm is None or not sys.stderr.isatty():

        def say(name: str) -> None:
            print(f"running {name} ...", file=sys.stderr, flush=True)

        yield say
        return
    with tqdm(total=total, unit="scenario", file=sys.stderr, dynamic_ncols=True) as bar:
        started = False

        def advance(name: str) -> None:
            nonlocal started
            if started:
                bar.update(1)
            started = True
            bar.set_description(name)

        yield advance
        if started:
            bar.update(1)


if __name__ == "__main__":
    sys.exit(main())
