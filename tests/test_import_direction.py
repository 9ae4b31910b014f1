"""Imports flow one way: protocol <- transports <- actors <- the feature packages."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "minos" / "networks"

# What each core layer must not import, by top-level name or by sibling package.
FORBIDDEN = {
    "protocol": {"zmq", "pykka", "aiohttp", "transports", "actors", "enroute", "http", "periodic"},
    "transports": {"actors", "enroute", "http", "periodic", "discovery", "specs", "system"},
    "actors": {"enroute", "http", "periodic", "discovery", "specs", "system"},
    # the features sit under system, the composition root: none of them imports it
    **{
        feature: {"system"}
        for feature in ("brokers", "durable", "http", "periodic", "discovery", "specs", "testing")
    },
    # routes and dispatch sit under every port: no port, transport or periodic machinery (no cycle with periodic)
    "enroute": {
        "zmq",
        "aiohttp",
        "transports",
        "brokers",
        "durable",
        "http",
        "periodic",
        "discovery",
        "specs",
        "system",
    },
}


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level >= 2:  # from ..x import y: a sibling package of minos.networks
                names.add(module)
            elif node.level == 0:
                names.add(module)
                if module.startswith("minos.networks."):
                    names.add(module.removeprefix("minos.networks."))
    return {name.split(".")[0] for name in names if name}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_core_layer_imports_nothing_above_it(layer):
    offending = {
        str(path.relative_to(PACKAGE)): sorted(_imported_names(path) & FORBIDDEN[layer])
        for path in sorted((PACKAGE / layer).glob("*.py"))
    }
    offending = {path: names for path, names in offending.items() if names}
    assert offending == {}


def test_the_protocol_layer_exists_so_the_check_above_is_not_vacuous():
    assert len(list((PACKAGE / "protocol").glob("*.py"))) >= 3
