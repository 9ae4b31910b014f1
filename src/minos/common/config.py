"""The service configuration: our YAML layout (and minos 0.7's two), validated at start-up, with overrides."""

from __future__ import annotations

import enum
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar, overload

from minos.common.exceptions import ConfigError, LayoutError
from minos.common.keys import TOP_LEVEL_KEYS, KnownKeys, own_sections, unknown_keys
from minos.common.layouts import V1, translate
from minos.common.sources import EnvironmentOverrides, parse_scalar, read_yaml

__all__ = ["MISSING", "TOP_LEVEL_KEYS", "Config", "ConfigError", "ConfigSource", "KnownKeys", "as_config"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_DICT_SOURCE: Final = "<dict>"
_SUPPORTED_VERSION: Final = 2
# "pkg.mod.attr" or "pkg.mod:attr.sub", as the enroute collector resolves them.
_IMPORT_PATH: Final = re.compile(
    r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*|\.[A-Za-z_]\w*)"
)


class _Missing(enum.Enum):
    MISSING = enum.auto()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""Default of the getters meaning "no default: the key is required"."""


class Config:
    """A read-only view of a service's configuration.

    The source is either a YAML file or a mapping in our layout: ``name`` (required), ``version``
    (optional, 2), ``interfaces`` with ``broker``, ``http`` and ``periodic`` sections, ``services``,
    ``middleware`` and ``routers`` (lists of import paths such as ``"pkg.mod.ClassName"``, or the objects
    themselves), ``discovery``, ``logging``, ``spec``, and the service's own sections, reachable with
    :meth:`get`. :data:`TOP_LEVEL_KEYS` lists the top-level keys; each section's reader in minos.networks
    refuses the keys it does not know (:meth:`check_keys`), and :func:`as_config` the top-level ones. A
    file in one of minos 0.7's layouts (a ``service`` section: v1; ``version: 2``: v2) is translated into
    ours first (see ``minos.common.layouts``); :attr:`notes` says what was used instead of what it named.

    An environment variable ``MINOS_<KEY>__<SUBKEY>...`` overrides the key at that path, its value parsed as
    a YAML scalar: ``MINOS_INTERFACES__HTTP__PORT=8080`` sets ``interfaces.http.port`` to the int 8080.
    Variables naming a key that does not exist add it. Every ``MINOS_`` variable is read as an override.
    For 0.7 files, 0.7's own variables apply first (``MINOS_REST_PORT`` for v1, ``MINOS_INTERFACES_HTTP_
    CONNECTOR_PORT`` for v2), then the keyword ``overrides``, then ours (see ``minos.common.sources``).

    The layout is checked here, so a bad configuration fails when the service starts rather than when a
    section is first used.

    Args:
        source: Path of a YAML file, or a mapping holding the configuration itself (copied).
        environ: Environment variables to read overrides from; ``None`` means ``os.environ``.
        with_environment: False reads no environment variable at all (as 0.7's argument).
        overrides: Keys to set, as 0.7 took them: a key's path with ``_`` for ``.`` (``name="orders"``,
            ``interfaces_http_port=8080``), or for a v1 file ConfigV1's names (``rest_port=8080``).

    Raises:
        ConfigError: The file cannot be read or parsed, an override cannot be applied, a 0.7 key names
            what cannot be used, or a section of the layout is missing or has the wrong type. The message
            names the file and the key.
    """

    __slots__ = ("_data", "_layout", "_notes", "_notes_logged", "_overrides", "_own", "_path", "_source")

    def __init__(
        self,
        source: str | os.PathLike[str] | Mapping[str, Any],
        environ: Mapping[str, str] | None = None,
        *,
        with_environment: bool = True,
        **overrides: object,
    ) -> None:
        self._path: Path | None
        if isinstance(source, Mapping):
            self._path = None
            self._source = _DICT_SOURCE
            raw: object = source
        else:
            self._path = Path(source)
            self._source = str(self._path)
            raw = read_yaml(self._path)
        if raw is None:
            # An empty file: report the keys it lacks rather than its emptiness.
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"Config {self._source} must hold a mapping at the top level (keys such as 'name' and "
                f"'interfaces'), but found {raw!r} ({type(raw).__name__}). "
                "Rewrite it in the minos v2 layout.",
                source=self._source,
            )
        if not with_environment:
            environ = {}
        elif environ is None:
            environ = os.environ
        try:
            translation = translate(_copy(raw), environ, overrides, parse_scalar)
        except LayoutError as error:
            raise ConfigError(
                f"Config key {error.key!r} in {self._source}: {error}", key=error.key, source=self._source
            ) from error
        self._data: dict[str, Any] = translation.data
        self._layout = translation.layout
        self._notes = tuple(translation.notes)
        self._notes_logged = False
        # Knows the variable that set each overridden key, for error messages.
        self._overrides = EnvironmentOverrides(
            self._source,
            self._path is not None,
            {tuple(key.split(".")): variable for variable, key in translation.variables.items()},
        )
        present = set(self._data)
        self._overrides.apply(
            self._data, {k: v for k, v in environ.items() if k not in translation.variables}
        )
        self._own, notes = own_sections(self._data, present, self._overrides.setter)
        self._notes += notes
        self._validate()

    # -- construction -------------------------------------------------------------------------------------

    def _validate(self) -> None:
        if self._layout == V1 and self._lookup("name") is MISSING:
            raise ConfigError(
                f"Config key 'service.name' is missing from {self._source} (a minos 0.7 v1 file); expected "
                "the service's name. Add it, or set MINOS_SERVICE_NAME.",
                key="service.name",
                source=self._source,
            )
        if not self.get_str("name"):
            raise self._overrides.wrong_type("name", "", "a non-empty string")
        version = self.get("version", default=None)
        if version is not None and (type(version) is not int or version != _SUPPORTED_VERSION):
            raise self._overrides.wrong_type(
                "version",
                version,
                f"{_SUPPORTED_VERSION} (or 1, minos 0.7's v1 layout with a service section)",
            )
        for name, section in self.get_mapping("interfaces", default={}).items():
            if not isinstance(section, dict):
                raise self._overrides.wrong_type(
                    f"interfaces.{name}", section, "a mapping (write {} for no settings)"
                )
        self._check_items("services", lambda item: isinstance(item, type), "a class")
        self._check_items("middleware", callable, "a callable")
        self._check_items("routers", lambda item: isinstance(item, type), "a class")
        self.get_mapping("discovery", default={})

    def _check_items(self, key: str, accepts: Callable[[object], bool], kind: str) -> None:
        for index, item in enumerate(self.get_list(key, default=[])):
            if isinstance(item, str) and _IMPORT_PATH.fullmatch(item):
                continue
            if not isinstance(item, str) and accepts(item):
                continue
            raise self._overrides.wrong_type(
                f"{key}[{index}]", item, f"an import path such as 'pkg.mod.ClassName', or {kind}"
            )

    # -- unknown keys -------------------------------------------------------------------------------------

    def unknown_keys(self, key: str, known: KnownKeys) -> list[ConfigError]:
        """One error per key under ``key`` that ``known`` does not list, subsections included, in file order.

        A section that is absent or not a mapping has none (its reader says what is wrong with it).

        Args:
            key: Dotted path of the section, e.g. ``"interfaces.broker"``; ``""`` for the top level.
            known: The section's keys (see :data:`KnownKeys`).

        Returns:
            Each error names the file and the key, and the closest known key when one is close, e.g.
            ``Config key 'interfaces.broker.durabel' in service.yml: unknown key; did you mean 'durable'?``.
        """
        node = self._lookup(key) if key else self._data
        return unknown_keys(
            node, key, known, lookup=self._lookup, unknown=self._overrides.unknown, own=self._own
        )

    def check_keys(self, key: str, known: KnownKeys) -> None:
        """Raise the first of :meth:`unknown_keys`: what a section's reader calls, so a typo is never ignored.

        Raises:
            ConfigError: A key under ``key`` is not in ``known``; the message names it and the closest one.
        """
        problems = self.unknown_keys(key, known)
        if problems:
            raise problems[0]

    def without(self, keys: Iterable[str]) -> Config:
        """A copy of this configuration without the keys at the dotted paths ``keys`` (absent ones ignored).

        ``check_config`` checks the values of a file whose unknown keys it has reported on such a copy, so
        that one problem does not hide another.
        """
        copy = type(self).__new__(type(self))
        for slot in self.__slots__:
            setattr(copy, slot, getattr(self, slot))
        copy._data = _copy(self._data)
        for key in keys:
            *parents, last = key.split(".")
            node: object = copy._data
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                for name in [name for name in node if str(name) == last]:
                    del node[name]
        return copy

    # -- generic access -----------------------------------------------------------------------------------

    def _lookup(self, key: str) -> object:
        parts = key.split(".")
        if not all(parts):
            raise ConfigError(
                f"Config key {key!r} is not a dotted path such as 'interfaces.http.port'.",
                key=key,
                source=self._source,
            )
        node: object = self._data
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                return MISSING
            node = node[part]
        return node

    def get(self, key: str, default: Any = MISSING) -> Any:
        """Returns the value at a dotted path, whatever its type.

        Containers are returned as copies, so changing them leaves the configuration as it was.

        Args:
            key: Dotted path, e.g. ``"interfaces.http.port"``.
            default: Returned when the key is absent; when not given, the key is required.

        Returns:
            The value after environment overrides.

        Raises:
            ConfigError: The key is absent and no default was given.
        """
        value = self._lookup(key)
        if value is MISSING:
            if default is MISSING:
                raise self._overrides.missing(key, "a value")
            return default
        return _copy(value)

    def _typed(self, key: str, default: object, expected: str, accepts: Callable[[object], bool]) -> Any:
        value = self._lookup(key)
        if value is MISSING:
            if default is MISSING:
                raise self._overrides.missing(key, expected)
            return default
        if not accepts(value):
            raise self._overrides.wrong_type(key, value, expected)
        return _copy(value)

    @overload
    def get_str(self, key: str) -> str: ...
    @overload
    def get_str(self, key: str, default: _T) -> str | _T: ...
    def get_str(self, key: str, default: object = MISSING) -> object:
        """Returns the string at a dotted path.

        Args:
            key: Dotted path, e.g. ``"interfaces.http.host"``.
            default: Returned when the key is absent; when not given, the key is required.

        Raises:
            ConfigError: The key is absent with no default, or holds something other than a string.
        """
        return self._typed(key, default, "a string", lambda value: isinstance(value, str))

    @overload
    def get_int(self, key: str) -> int: ...
    @overload
    def get_int(self, key: str, default: _T) -> int | _T: ...
    def get_int(self, key: str, default: object = MISSING) -> object:
        """Returns the integer at a dotted path; ``true``/``false`` are not integers here.

        Args:
            key: Dotted path, e.g. ``"interfaces.http.port"``.
            default: Returned when the key is absent; when not given, the key is required.

        Raises:
            ConfigError: The key is absent with no default, or holds something other than an int.
        """
        return self._typed(key, default, "an int", _is_int)

    @overload
    def get_float(self, key: str) -> float: ...
    @overload
    def get_float(self, key: str, default: _T) -> float | _T: ...
    def get_float(self, key: str, default: object = MISSING) -> object:
        """Returns the number at a dotted path as a float; an int such as ``5`` gives ``5.0``.

        Args:
            key: Dotted path, e.g. ``"interfaces.broker.timeout"``.
            default: Returned when the key is absent; when not given, the key is required.

        Raises:
            ConfigError: The key is absent with no default, or holds something other than a number.
        """
        if self._lookup(key) is MISSING:
            return self._typed(key, default, "a number (int or float)", _is_number)
        return float(self._typed(key, default, "a number (int or float)", _is_number))

    @overload
    def get_bool(self, key: str) -> bool: ...
    @overload
    def get_bool(self, key: str, default: _T) -> bool | _T: ...
    def get_bool(self, key: str, default: object = MISSING) -> object:
        """Returns the boolean at a dotted path; strings and numbers are not booleans here.

        Args:
            key: Dotted path, e.g. ``"discovery.enabled"``.
            default: Returned when the key is absent; when not given, the key is required.

        Raises:
            ConfigError: The key is absent with no default, or holds something other than true or false.
        """
        return self._typed(key, default, "a bool (true or false)", lambda value: isinstance(value, bool))

    @overload
    def get_list(self, key: str) -> list[Any]: ...
    @overload
    def get_list(self, key: str, default: _T) -> list[Any] | _T: ...
    def get_list(self, key: str, default: object = MISSING) -> object:
        """Returns a copy of the list at a dotted path.

        Args:
            key: Dotted path, e.g. ``"services"``.
            default: Returned when the key is absent; when not given, the key is required.

        Raises:
            ConfigError: The key is absent with no default, or holds something other than a list.
        """
        return self._typed(key, default, "a list", lambda value: isinstance(value, list))

    @overload
    def get_mapping(self, key: str) -> dict[str, Any]: ...
    @overload
    def get_mapping(self, key: str, default: _T) -> dict[str, Any] | _T: ...
    def get_mapping(self, key: str, default: object = MISSING) -> object:
        """Returns a copy of the mapping at a dotted path.

        Args:
            key: Dotted path, e.g. ``"interfaces.http"``.
            default: Returned when the key is absent; when not given, the key is required.

        Raises:
            ConfigError: The key is absent with no default, or holds something other than a mapping.
        """
        return self._typed(key, default, "a mapping", lambda value: isinstance(value, dict))

    # -- the v2 layout ------------------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The YAML file the configuration was read from, or ``None`` when it came from a mapping."""
        return self._path

    @property
    def source(self) -> str:
        """Where the configuration came from, as error messages name it: the file path or ``"<dict>"``."""
        return self._source

    @property
    def notes(self) -> tuple[str, ...]:
        """What the translation of a minos 0.7 file has to say, one line each: what is used instead of
        what it named, and the sections left to other minos packages; empty for our own layout."""
        return self._notes

    def log_notes(self) -> None:
        """Log :attr:`notes` as warnings, the first time only: the ports and the runner call it at start-up."""
        if self._notes_logged:
            return
        self._notes_logged = True
        for note in self._notes:
            logger.warning("%s: %s", self._source, note)

    @property
    def name(self) -> str:
        """The service name."""
        return self.get_str("name")

    @property
    def services(self) -> list[str | type]:
        """The service classes or their import paths, in order; empty when absent."""
        return self.get_list("services", default=[])

    @property
    def middleware(self) -> list[str | Callable[..., Any]]:
        """The middleware callables or their import paths, outermost first; empty when absent."""
        return self.get_list("middleware", default=[])

    @property
    def routers(self) -> list[str | type]:
        """The router classes or their import paths; empty when absent."""
        return self.get_list("routers", default=[])

    @property
    def interfaces(self) -> dict[str, dict[str, Any]]:
        """The settings of each interface (``broker``, ``http``, ``periodic`` ...); empty when absent."""
        return self.get_mapping("interfaces", default={})

    @property
    def discovery(self) -> dict[str, Any]:
        """The discovery settings; empty when absent."""
        return self.get_mapping("discovery", default={})

    def top_level_keys(self) -> list[str]:
        """The top-level keys, in our layout (a 0.7 file's translated), after environment overrides."""
        return list(self._data)

    def has_interface(self, name: str) -> bool:
        """Tells whether ``interfaces.<name>`` is configured.

        Args:
            name: Interface name, e.g. ``"http"``.
        """
        return name in self.interfaces

    def get_interface(self, name: str) -> dict[str, Any]:
        """Returns a copy of the settings of one interface.

        Args:
            name: Interface name, e.g. ``"http"``.

        Raises:
            ConfigError: ``interfaces.<name>`` is absent.
        """
        return self.get_mapping(f"interfaces.{name}")

    def __repr__(self) -> str:
        source = repr(self._source) if self._path is not None else self._source
        return f"{type(self).__name__}({source}, name={self.get_str('name')!r})"


ConfigSource = Config | str | os.PathLike[str] | Mapping[str, Any]
"""What every ``from_config`` accepts: a Config, the path of a YAML file, or the configuration as a mapping."""


def as_config(source: ConfigSource) -> Config:
    """The Config ``source`` is or describes, with its notes logged (once per Config) and its top-level keys
    checked: what every ``from_config`` calls first (each section's reader checks that section's keys).

    Raises:
        ConfigError: ``source`` is not a valid configuration, or has a top-level key that is not known.
    """
    config = source if isinstance(source, Config) else Config(source)
    config.log_notes()
    config.check_keys("", TOP_LEVEL_KEYS)
    return config


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _copy(value: Any) -> Any:
    """Copies containers and keeps leaves, so classes and callables in a dict source survive as themselves."""
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(item) for item in value]
    return value
