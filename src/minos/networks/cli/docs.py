"""``minos-networks docs``: the OpenAPI and AsyncAPI documents of a configuration's services, as JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from minos.common import ConfigError

from ..specs import AsyncAPIService, OpenAPIService
from ..system.runner import unknown_keys
from .config_file import load_config
from .exits import EXIT_CONFIG, EXIT_OK, print_problems
from .options import Commands

__all__ = ["add_parser", "docs_command"]


def add_parser(commands: Commands) -> None:
    """Add ``docs CONFIG.yml [--openapi | --asyncapi]``."""
    docs = commands.add_parser(
        "docs",
        help="print the OpenAPI / AsyncAPI documents of the configured services as JSON",
        description="Print the OpenAPI 3.1 (--openapi), the AsyncAPI 3.0 (--asyncapi) or both documents "
        '({"openapi": ..., "asyncapi": ...}) of CONFIG.yml\'s services. Exit codes: 0 printed, '
        "2 usage, 3 configuration error (a service that does not import).",
    )
    docs.add_argument("config", metavar="CONFIG.yml", help="the service's configuration file")
    which = docs.add_mutually_exclusive_group()
    which.add_argument("--openapi", dest="which", action="store_const", const="openapi", help="OpenAPI only")
    which.add_argument(
        "--asyncapi", dest="which", action="store_const", const="asyncapi", help="AsyncAPI only"
    )
    docs.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    return docs_command(args.config, args.which)


def docs_command(path: str, which: str | None) -> int:
    """Print the OpenAPI (``which="openapi"``), AsyncAPI (``"asyncapi"``) or both documents as JSON."""
    prefix = "minos-networks docs"
    config = load_config(path, prefix, check=unknown_keys)
    if config is None:
        return EXIT_CONFIG
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "openapi": lambda: OpenAPIService(config).spec,
        "asyncapi": lambda: AsyncAPIService(config).spec,
    }
    try:
        documents = {name: build() for name, build in builders.items() if which in (None, name)}
    except Exception as error:  # a service that does not import, or cannot be collected
        print_problems(prefix, path, [ConfigError(f"{type(error).__name__}: {error}", key="services")])
        return EXIT_CONFIG
    document = documents[which] if which is not None else documents
    print(json.dumps(document, indent=2, default=str), flush=True)
    return EXIT_OK
