"""minos 0.7's overrides, applied to a file in its own layout's keys before it is translated into ours.

As 0.7 applied them: ConfigV1's fixed environment variable names (``MINOS_REST_PORT`` ...) to v1 files,
ConfigV2's ``MINOS_<KEY>_<SUB>`` (one underscore per dot) to v2 files, and keyword overrides
(``Config(path, rest_port=8080)``, ``Config(path, interfaces_http_connector_port=8080)``) in the same two
forms. Our own ``MINOS_<KEY>__<SUB>`` variables are ``Config``'s business; they apply after the translation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from minos.common.exceptions import LayoutError

__all__ = ["OURS", "V1", "V1_PARAMETERS", "V1_VARIABLES", "V2", "V2_KEYS", "apply_overrides"]

V1: Final = "v1"
V2: Final = "v2"
OURS: Final = "ours"

V1_VARIABLES: Final = {
    "MINOS_SERVICE_NAME": "service.name",
    "MINOS_REST_HOST": "rest.host",
    "MINOS_REST_PORT": "rest.port",
    "MINOS_BROKER_HOST": "broker.host",
    "MINOS_BROKER_PORT": "broker.port",
    "MINOS_DISCOVERY_CLIENT": "discovery.client",
    "MINOS_DISCOVERY_HOST": "discovery.host",
    "MINOS_DISCOVERY_PORT": "discovery.port",
    **{
        f"MINOS_{section.replace('.', '_').upper()}_{name.upper()}": f"{section}.{name}"
        for section in ("broker.queue", "repository", "snapshot")
        for name in ("host", "port", "database", "user", "password")
    },
    "MINOS_COMMANDS_SERVICE": "commands.service",
    "MINOS_QUERIES_SERVICE": "queries.service",
}
"""ConfigV1's environment variables and the v1 key each sets."""

V1_PARAMETERS: Final = {
    **{name.removeprefix("MINOS_").lower(): key for name, key in V1_VARIABLES.items()},
    "service_injections": "service.injections",
    "saga_broker": "saga.broker",
    "saga_port": "saga.port",
    "minos_discovery_client": "discovery.client",
    "minos_discovery_host": "discovery.host",
    "minos_discovery_port": "discovery.port",
}
"""ConfigV1's keyword overrides (``Config(path, rest_port=8080)``) and the v1 key each sets."""

V2_KEYS: Final = (
    "name",
    "interfaces.http.port",
    "interfaces.http.connector.client",
    "interfaces.http.connector.host",
    "interfaces.http.connector.port",
    "interfaces.broker.port",
    "interfaces.broker.common.host",
    "interfaces.broker.common.port",
    "interfaces.broker.common.queue.records",
    "interfaces.broker.common.queue.retry",
    "interfaces.broker.publisher.client",
    "interfaces.broker.publisher.queue",
    "interfaces.broker.subscriber.client",
    "interfaces.broker.subscriber.queue",
    "interfaces.broker.subscriber.validator",
    "interfaces.broker.subscriber.idempotent",
    "interfaces.periodic.port",
    "discovery.connector",
    "discovery.client",
    "discovery.host",
    "discovery.port",
)
"""The 0.7 v2 keys this module reads (besides the lists ``services``, ``middleware``, ``routers``, ``pools``)."""


def apply_overrides(
    raw: dict[str, Any],
    layout: str,
    environ: Mapping[str, str],
    overrides: Mapping[str, object],
    parse: Callable[[str], object],
) -> dict[str, str]:
    """Set in ``raw`` what 0.7's variables (for a 0.7 file) and the keyword ``overrides`` say.

    Args:
        raw: The configuration as read, in ``layout``; changed in place.
        layout: ``V1``, ``V2`` or ``OURS`` (keyword overrides only, in the v2 form).
        environ: The environment.
        overrides: Keyword overrides, which win over the variables.
        parse: Reads a variable's text as the file would hold it (a YAML scalar).

    Returns:
        The key (in ``layout``) each variable set, by key.

    Raises:
        LayoutError: A keyword override names no key.
    """
    set_by: dict[str, str] = {}
    if layout == V1:
        for variable, key in V1_VARIABLES.items():
            if variable in environ:
                _put(raw, key.split("."), parse(environ[variable]))
                set_by[key] = variable
        for name, value in overrides.items():
            _put(
                raw,
                V1_PARAMETERS[name].split(".") if name in V1_PARAMETERS else _resolve(raw, name, name),
                value,
            )
        return set_by
    if layout == V2:
        for variable, text in environ.items():
            name = variable.removeprefix("MINOS_").lower()
            if variable.startswith("MINOS_") and "__" not in name and (parts := _resolve(raw, name, None)):
                _put(raw, parts, parse(text))
                set_by[".".join(parts)] = variable
    for name, value in overrides.items():
        _put(raw, _resolve(raw, name, name), value)
    return set_by


def _resolve(raw: Mapping[str, Any], name: str, fail: str | None) -> list[str]:
    """The key path an underscore name (``interfaces_http_connector_port``) means: a key of the file or of
    0.7's v2 layout, else (keyword overrides only, ``fail`` set) a new key under the deepest section of the
    file it starts with.

    A variable only ever sets a key the file or 0.7's layout has, as ConfigV2 read only the keys it was
    asked for: a stray ``MINOS_DISCOVERY_SERVICE_URL`` of the deployment adds nothing.
    """
    paths = {"_".join(parts): parts for parts in _paths(raw)}
    paths.update({key.replace(".", "_"): key.split(".") for key in V2_KEYS})
    if name in paths:
        return list(paths[name])
    if fail is None:
        return []
    sections = [parts for parts in _paths(raw, sections=True) if name.startswith("_".join(parts) + "_")]
    if sections:
        deepest = max(sections, key=len)
        return [*deepest, name[len("_".join(deepest)) + 1 :]]
    raise LayoutError(
        f"The override {fail!r} names no key of the file: write the key's path with '_' for '.', "
        "e.g. interfaces_http_connector_port, or add the section to the file",
        key=fail,
    )


def _paths(
    node: Mapping[str, Any], prefix: tuple[str, ...] = (), *, sections: bool = False
) -> list[list[str]]:
    found: list[list[str]] = []
    for key, value in node.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping):
            found.append(list(path))
            found.extend(_paths(value, path, sections=sections))
        elif not sections:
            found.append(list(path))
    return found


def _put(node: dict[str, Any], parts: list[str], value: object) -> None:
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value
