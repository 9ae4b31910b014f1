"""``minos-networks check-config``: a configuration checked as ``run`` would, and printed after overrides."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from minos.common import Config

from ..system import configure_logging
from .config_file import load_config
from .exits import EXIT_CONFIG, EXIT_OK
from .options import Commands

__all__ = ["add_parser", "check_config_command", "effective_config"]


def add_parser(commands: Commands) -> None:
    """Add ``check-config CONFIG.yml [--format yaml|json]``."""
    check = commands.add_parser(
        "check-config",
        help="check a configuration file and print it after environment overrides",
        description="Check CONFIG.yml as `run` would, without starting anything, and print the effective "
        "configuration (after MINOS_* overrides). Problems are printed as FILE: KEY: PROBLEM. Exit codes: "
        "0 valid, 2 usage, 3 configuration error.",
    )
    check.add_argument("config", metavar="CONFIG.yml", help="the service's configuration file")
    check.add_argument(
        "--format", dest="output", choices=("yaml", "json"), default="yaml", help="yaml or json"
    )
    check.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    return check_config_command(args.config, args.output)


def check_config_command(path: str, output: str) -> int:
    """Check ``path`` and print the effective configuration as ``output`` (yaml or json); 0 ok, 3 wrong."""
    prefix = "minos-networks check-config"
    configure_logging()  # the notes on a 0.7 file are warnings on stderr, beside the printed config
    config = load_config(path, prefix)
    if config is None:
        return EXIT_CONFIG
    data = effective_config(config)
    if output == "json":
        print(json.dumps(data, indent=2, default=str), flush=True)
    else:
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), end="", flush=True)
    print(f"{prefix}: {path} is valid", file=sys.stderr)
    return EXIT_OK


def effective_config(config: Config) -> dict[str, Any]:
    """The whole configuration after environment overrides (and a 0.7 file's translation), as plain data."""
    return {key: config.get(key, None) for key in config.top_level_keys()}
