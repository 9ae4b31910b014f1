"""The package's shape: imports flow one way through the layers, no module grows past 500 lines, few lazy imports.

The layers (``docs/architecture.md`` draws them), bottom first; a unit imports only units of a lower layer, so
two units of one layer never import each other and no cycle can form:

0. ``exceptions``
1. ``protocol`` and ``actors``, side by side
2. ``transports`` (on protocol) and ``tracing``
3. ``enroute`` (routes and dispatch) and ``durable`` (the outbox and inbox stores)
4. the features: ``brokers``, ``http``, ``periodic``, ``discovery``, ``specs``
5. ``testing``
6. ``system``, the composition root
7. the package's ``__init__`` (the public names) and ``demo`` (the demo service)
8. ``cli``, the ``minos-networks`` commands
9. ``__main__``
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "minos" / "networks"

LAYERS: dict[str, int] = {
    "exceptions": 0,
    "protocol": 1,
    "actors": 1,
    "transports": 2,
    "tracing": 2,
    "enroute": 3,
    "durable": 3,
    "brokers": 4,
    "http": 4,
    "periodic": 4,
    "discovery": 4,
    "specs": 4,
    "testing": 5,
    "system": 6,
    "__init__": 7,
    "demo": 7,
    "cli": 8,
    "__main__": 9,
}
"""Each unit of ``minos.networks`` (a subpackage or a top-level module) and its layer."""

THIRD_PARTY_FORBIDDEN = {
    "protocol": {"zmq", "pykka", "aiohttp", "nats"},
    "actors": {"zmq", "aiohttp", "nats"},
    "enroute": {"zmq", "aiohttp", "nats"},
}
"""Libraries a unit must not import: the wire format does no I/O, the runtime and the routes know no transport."""

MAX_LINES = 500
MAX_LAZY_IMPORTS = 5


@dataclass(frozen=True)
class Import:
    """One import statement of a module of the package, resolved to what it names."""

    path: Path
    line: int
    target: str  # a dotted module name: "minos.networks.brokers.port", "zmq", ...
    lazy: bool  # inside a function


def module_name(path: Path, src: Path) -> str:
    """The dotted name of the module at ``path`` under the import root ``src``."""
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, src: Path) -> list[Import]:
    """Every import of the module at ``path`` (under the import root ``src``), relative ones resolved."""
    package = module_name(path, src).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    tree = ast.parse(path.read_text(), filename=str(path))
    lazy_nodes = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from . import x` names a module when x is one; either way x's package is imported
            targets = [f"{module}.{alias.name}" for alias in node.names] if not node.module else [module]
        else:
            continue
        found.extend(Import(path, node.lineno, target, id(node) in lazy_nodes) for target in targets)
    return found


def unit_of(module: str, package: str) -> str | None:
    """The unit of ``package`` (``minos.networks``) that a dotted module name belongs to, or None outside it."""
    if module == package:
        return "__init__"
    if not module.startswith(package + "."):
        return None
    return module.removeprefix(package + ".").split(".")[0]


def upward_imports(src: Path, name: str, layers: dict[str, int]) -> list[str]:
    """Each import of a unit of package ``name`` from a unit of the same or a higher layer, and each unit
    missing from ``layers``."""
    package_root = src.joinpath(*name.split("."))
    problems = []
    for path in sorted(package_root.rglob("*.py")):
        source = unit_of(module_name(path, src), name)
        assert source is not None
        if source not in layers:
            problems.append(
                f"{path.relative_to(package_root)}: unit {source!r} has no layer; add it to LAYERS"
            )
            continue
        for item in imports_of(path, src):
            target = unit_of(item.target, name)
            if target is None or target == source:
                continue
            if target not in layers or layers[target] >= layers[source]:
                problems.append(
                    f"{path.relative_to(package_root)}:{item.line}: {source} (layer {layers[source]}) imports "
                    f"{item.target} ({target}, layer {layers.get(target, '?')})"
                )
    return problems


def test_every_import_goes_down_a_layer():
    assert upward_imports(SRC, "minos.networks", LAYERS) == []


@pytest.mark.parametrize("unit", sorted(THIRD_PARTY_FORBIDDEN))
def test_the_lower_layers_import_no_transport_library(unit):
    paths = sorted((PACKAGE / unit).rglob("*.py"))
    assert paths, f"{unit} has no module: the check would be vacuous"
    offending = [
        f"{path.relative_to(PACKAGE)}:{item.line}: {item.target}"
        for path in paths
        for item in imports_of(path, SRC)
        if item.target.split(".")[0] in THIRD_PARTY_FORBIDDEN[unit]
    ]
    assert offending == []


def test_the_check_finds_an_upward_import_and_a_cycle(tmp_path):
    root = tmp_path / "pkg"
    for unit in ("low", "high"):
        (root / unit).mkdir(parents=True)
        (root / unit / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "high" / "a.py").write_text("from ..low import b\n")
    (root / "low" / "b.py").write_text("def f():\n    from pkg.high import a\n")
    (root / "stray.py").write_text("")
    problems = upward_imports(tmp_path, "pkg", {"low": 0, "high": 1, "__init__": 2})
    assert problems == [
        "low/b.py:2: low (layer 0) imports pkg.high (high, layer 1)",
        "stray.py: unit 'stray' has no layer; add it to LAYERS",
    ]


def test_no_module_is_past_500_lines():
    long = {
        str(path.relative_to(SRC)): lines
        for path in sorted(SRC.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_few_imports_inside_functions_each_saying_why():
    lazy = [
        item
        for path in sorted(SRC.rglob("*.py"))
        for item in imports_of(path, SRC)
        if item.lazy and item.target.startswith("minos")
    ]
    unexplained = []
    for item in lazy:
        lines = item.path.read_text().splitlines()
        here, above = lines[item.line - 1], lines[item.line - 2].strip()
        if "#" not in here and not above.startswith("#"):
            unexplained.append(f"{item.path.relative_to(SRC)}:{item.line}")
    assert unexplained == []
    assert len({(item.path, item.line) for item in lazy}) <= MAX_LAZY_IMPORTS
