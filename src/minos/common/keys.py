"""The known keys of a configuration: the top-level table, and finding the keys a section does not know.

Each section's reader in minos.networks declares its keys as a :data:`KnownKeys` table and refuses any
other (``Config.check_keys``); the top-level keys are :data:`TOP_LEVEL_KEYS`. A key close to a known one
is a typo, named with the key it is close to; a key that is far from every known one at the top level is
one of the service's own sections, left to ``Config.get``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Container, Iterable, Mapping
from typing import Final, TypeVar

from minos.common.layouts import FOREIGN_SECTIONS

__all__ = ["TOP_LEVEL_KEYS", "KnownKeys", "own_sections", "read_keys", "unknown_keys"]

_E = TypeVar("_E")

KnownKeys = Mapping[str, "KnownKeys | str | None"]
"""The keys of a section: each maps to None (a value), to the known keys of its subsection (checked too,
when the value is a mapping), or to a sentence saying what to write instead (a key that is not read here,
such as one of minos 0.7's that has a counterpart)."""

TOP_LEVEL_KEYS: Final[KnownKeys] = {
    # ours: Config reads the first six; each section's own keys are known where it is read
    "name": None,
    "version": None,
    "interfaces": {"broker": None, "http": None, "periodic": None},
    "services": None,
    "middleware": None,
    "routers": None,
    "discovery": None,  # minos.networks.discovery
    "logging": None,  # minos.networks.system.logs
    "spec": None,  # minos.networks.specs
    "tracing": None,  # minos.networks.tracing: true / false (absent: on when an OpenTelemetry SDK is set)
    # minos 0.7's, left by the translation: each entry is named in the start-up notes (used or not)
    "pools": None,
    # other minos packages' sections: kept for Config.get, named in one start-up warning
    **dict.fromkeys(FOREIGN_SECTIONS),
    "metrics": "the HTTP port serves the metrics: write interfaces.http.metrics: true",
    # minos 0.7's v1 sections, read only in a v1 file: a top-level name makes a file ours
    "service": "it is minos 0.7's v1 section, read only in a file without a top-level 'name'; "
    "write name and services at the top level instead",
    "rest": "it is minos 0.7's v1 section, read only in a v1 file (one with a 'service' section); "
    "write interfaces.http.host and interfaces.http.port instead",
    "broker": "it is minos 0.7's v1 section, read only in a v1 file (one with a 'service' section); "
    "write interfaces.broker.endpoint: tcp://HOST:PORT instead",
}
"""The top-level keys: ours, minos 0.7's the translation leaves, and other minos packages' sections."""


def own_sections(
    keys: Iterable[object], present: Container[str], setter: Callable[[str], str | None]
) -> tuple[frozenset[str], tuple[str, ...]]:
    """The top-level keys left to the service's own code, and the notes that name them.

    They are the file's keys that are none of ``TOP_LEVEL_KEYS`` nor close to one (a close one is a typo,
    refused), and those only a ``MINOS_`` variable adds (a deployment's environment carries variables for
    other programs, and 0.7 read only the keys it asked for).

    Args:
        keys: The top-level keys, after environment overrides.
        present: The top-level keys the file (or mapping) itself has.
        setter: The environment variable that set a key, if one did.
    """
    own: list[str] = []
    notes: list[str] = []
    for key in keys:
        if not isinstance(key, str) or (key in TOP_LEVEL_KEYS and key in present):
            continue
        if key not in present and not _is_read(TOP_LEVEL_KEYS, key):
            notes.append(f"{key}: not read by minos.networks (set by environment variable {setter(key)})")
            own.append(key)
        elif key not in TOP_LEVEL_KEYS and not difflib.get_close_matches(key, read_keys(TOP_LEVEL_KEYS)):
            own.append(key)
    from_file = [key for key in own if key in present]
    if from_file:
        notes.append(
            "not read by minos.networks (the service's own sections, for Config.get): " + ", ".join(from_file)
        )
    return frozenset(own), tuple(notes)


def unknown_keys(
    node: object,
    key: str,
    known: KnownKeys,
    *,
    lookup: Callable[[str], object],
    unknown: Callable[[str, str], _E],
    own: Container[str] = (),
) -> list[_E]:
    """One problem per key of ``node`` (the section at ``key``) that ``known`` does not list, in order.

    Subsections that ``known`` describes are checked too (each found with ``lookup``); ``own`` are the
    top-level keys to leave alone.

    Args:
        node: The section; one that is not a mapping has no unknown key.
        key: The section's dotted path; ``""`` for the top level.
        known: The section's keys.
        lookup: The value at a dotted path.
        unknown: Makes the problem of a key from its dotted path and what is wrong with it.
        own: The service's own top-level sections (see :func:`own_sections`).
    """
    if not isinstance(node, dict):
        return []
    problems: list[_E] = []
    for name, value in node.items():
        if not key and name in own:
            continue
        dotted = f"{key}.{name}" if key else str(name)
        entry = known.get(name) if isinstance(name, str) else None
        if not isinstance(name, str) or name not in known:
            keys = read_keys(known)
            close = difflib.get_close_matches(str(name), keys, n=1)
            where = key or "the top level"
            hint = f"did you mean {close[0]!r}?" if close else f"{where} has {', '.join(keys)}"
            problems.append(unknown(dotted, f"unknown key; {hint}"))
        elif isinstance(entry, str):
            problems.append(unknown(dotted, f"not read by minos.networks: {entry}"))
        elif entry is not None and isinstance(value, dict):
            problems.extend(unknown_keys(lookup(dotted), dotted, entry, lookup=lookup, unknown=unknown))
    return problems


def read_keys(known: KnownKeys) -> list[str]:
    """The keys of ``known`` that are read (not those that only say what to write instead), sorted."""
    return sorted(key for key in known if _is_read(known, key))


def _is_read(known: KnownKeys, key: str) -> bool:
    return key in known and not isinstance(known[key], str)
