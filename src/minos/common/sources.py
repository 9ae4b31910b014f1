"""Where a configuration's values come from: its YAML file, and ``MINOS_<KEY>__<SUBKEY>`` variables over it.

An environment variable ``MINOS_<KEY>__<SUBKEY>...`` overrides the key at that path, its value parsed as a
YAML scalar (:func:`parse_scalar`): ``MINOS_INTERFACES__HTTP__PORT=8080`` sets ``interfaces.http.port``
to the int 8080. A variable naming a key that does not exist adds it. :class:`EnvironmentOverrides`
remembers which variable set which key, so that an error about a key says what to fix: the file, or
that variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from minos.common.exceptions import ConfigError

__all__ = ["ENV_PREFIX", "ENV_SEPARATOR", "EnvironmentOverrides", "parse_scalar", "read_yaml"]

ENV_PREFIX: Final = "MINOS_"
ENV_SEPARATOR: Final = "__"


def read_yaml(path: Path) -> object:
    """The content of the YAML file at ``path`` (None when it is empty).

    Raises:
        ConfigError: The file cannot be read, is not UTF-8 or is not valid YAML; the message says where.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"Config file {str(path)!r} cannot be read ({exc.strerror or exc}). Check the path.",
            source=str(path),
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Config file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}). "
            "Save it as UTF-8 YAML.",
            source=str(path),
        ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"Config file {str(path)!r} is not valid YAML: {problem}{where}. Fix the syntax.",
            source=str(path),
        ) from exc


class EnvironmentOverrides:
    """The environment overrides of one configuration: which variable set which key, and the errors naming it.

    Args:
        source: Where the configuration came from, as error messages name it: a file path or ``"<dict>"``.
        from_file: Whether it came from a file (else from a mapping).
        variables: The path of each key already overridden (by minos 0.7's variables), mapped to the
            variable that set it; :meth:`apply` adds to it.
    """

    __slots__ = ("_from_file", "_source", "_variables")

    def __init__(self, source: str, from_file: bool, variables: dict[tuple[str, ...], str]) -> None:
        self._source = source
        self._from_file = from_file
        self._variables = variables

    def apply(self, data: dict[str, Any], environ: Mapping[str, str]) -> None:
        """Set in ``data`` the key each ``MINOS_`` variable of ``environ`` names, shorter paths first.

        Raises:
            ConfigError: A variable does not name a key, or names one inside a value that is not a mapping.
        """
        overrides: list[tuple[tuple[str, ...], str, str]] = []
        for variable, text in environ.items():
            if not variable.startswith(ENV_PREFIX):
                continue
            parts = tuple(variable[len(ENV_PREFIX) :].split(ENV_SEPARATOR))
            if not all(parts):
                raise ConfigError(
                    f"Environment variable {variable!r} does not name a config key: write "
                    f"{ENV_PREFIX}<KEY>{ENV_SEPARATOR}<SUBKEY>, e.g. {ENV_PREFIX}INTERFACES__HTTP__PORT, "
                    "or unset it.",
                    source=self._source,
                )
            overrides.append((parts, variable, text))
        # Shorter paths first, so MINOS_INTERFACES__HTTP__PORT refines a whole MINOS_INTERFACES__HTTP.
        overrides.sort(key=lambda item: (len(item[0]), item[1]))
        for parts, variable, text in overrides:
            self._set(data, parts, parse_scalar(text), variable)

    def _set(self, data: dict[str, Any], parts: tuple[str, ...], value: object, variable: str) -> None:
        node = data
        path: list[str] = []
        for index, part in enumerate(parts):
            key = _match_key(node, part)
            path.append(key)
            if index == len(parts) - 1:
                node[key] = value
                break
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                dotted = ".".join(path)
                raise ConfigError(
                    f"Environment variable {variable!r} cannot override a key inside {dotted!r} in "
                    f"{self._source}: {dotted!r} is {child!r} ({type(child).__name__}), not a mapping. "
                    "Unset the variable or make the key a mapping.",
                    key=dotted,
                    source=self._source,
                )
            node = child
        self._variables[tuple(path)] = variable

    def origin(self, key: str) -> str | None:
        """The variable that set ``key`` or a key around it, if one did."""
        parts = tuple(key.split("."))
        for length in range(len(parts), 0, -1):
            variable = self._variables.get(parts[:length])
            if variable is not None:
                return variable
        return None

    def setter(self, key: str) -> str | None:
        """The variable that set ``key`` or a key inside it, if one did."""
        parts = tuple(key.split("."))
        inside = (variable for path, variable in self._variables.items() if path[: len(parts)] == parts)
        return self.origin(key) or next(inside, None)

    def wrong_type(self, key: str, value: object, expected: str) -> ConfigError:
        """The error of ``key`` holding ``value``, not what was ``expected``: fix the file, or the variable."""
        # Items such as "services[2]" were set by the variable of their list.
        variable = self.origin(key.split("[", 1)[0])
        if variable is None:
            origin, fix = "", f"Fix the value in {self._source}."
        else:
            origin, fix = f" (set by environment variable {variable})", f"Fix or unset {variable}."
        return ConfigError(
            f"Config key {key!r} in {self._source} must be {expected}, but found {value!r} "
            f"({type(value).__name__}){origin}. {fix}",
            key=key,
            source=self._source,
        )

    def missing(self, key: str, expected: str) -> ConfigError:
        """The error of ``key`` being absent: add it, or set the variable that would set it."""
        variable = ENV_PREFIX + ENV_SEPARATOR.join(key.upper().split("."))
        place = "the file" if self._from_file else "the dict"
        return ConfigError(
            f"Config key {key!r} is missing from {self._source}; expected {expected}, found nothing. "
            f"Add it to {place} or set {variable}.",
            key=key,
            source=self._source,
        )

    def unknown(self, key: str, problem: str) -> ConfigError:
        """The error of ``key`` not being one its section knows, naming the variable that set it if one did."""
        variable = self.setter(key)
        origin = "" if variable is None else f" (set by environment variable {variable})"
        return ConfigError(
            f"Config key {key!r} in {self._source}{origin}: {problem}", key=key, source=self._source
        )


def parse_scalar(text: str) -> object:
    """Reads an env value as YAML would read it in the file; anything but a scalar stays a string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, dict | list):
        return text
    return value


def _match_key(node: Mapping[str, Any], part: str) -> str:
    """Finds the existing key an upper-cased env segment names, or the lower-case key to add."""
    lower = part.lower()
    if lower in node:
        return lower
    for key in node:
        if isinstance(key, str) and key.upper() == part.upper():
            return key
    return lower
