"""The config layouts of minos 0.7 (v1 and v2), translated into ours before validation, saying what changed.

A file is read in one of three layouts, told apart by shape: a ``service`` section (or ``version: 1``) is
0.7's v1 (the tutorials' files), ``version: 2`` is 0.7's v2 (the QuickStart's), anything else is ours
(which carries no ``version``). :func:`translate` turns the first two into ours; our own keys, when a file
has them too, win. Each 0.7 key is either mapped (the tables below list every one), left for the package
that owned it with one warning naming them all, or an error naming it and what to write instead.

0.7's overrides (``minos.common.overrides``) apply before the translation, in the file's own keys.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from minos.common.exceptions import LayoutError
from minos.common.overrides import OURS, V1, V2, apply_overrides

__all__ = ["OURS", "V1", "V2", "Translation", "detect_layout", "translate"]

# -- the known keys ------------------------------------------------------------------------------------------

V1_SERVICE_KEYS: Final = ("name", "aggregate", "injections", "services")

FOREIGN_SECTIONS: Final = {
    "aggregate": "minos.aggregate",
    "databases": "minos.common's database clients",
    "repository": "minos.aggregate's event store",
    "snapshot": "minos.aggregate's snapshots",
    "query_repository": "minos.cqrs's query store",
    "saga": "minos.saga",
    "injections": "minos.common's dependency injection",
    "serializer": "minos.common",
}
"""Top-level sections of other minos packages: kept (``Config.get`` reads them), named in one warning, not used."""
FOREIGN_PACKAGES: Final = ("minos.aggregate", "minos.saga", "minos.cqrs", "minos.common")

HTTP_PORTS: Final = ("minos.networks.HttpPort", "minos.networks.RestService")
BROKER_PORTS: Final = ("minos.networks.BrokerPort", "minos.networks.BrokerHandlerService")
PERIODIC_PORTS: Final = ("minos.networks.PeriodicPort", "minos.networks.PeriodicTaskSchedulerService")
HTTP_CONNECTORS: Final = ("minos.plugins.aiohttp.AioHttpConnector", "minos.networks.AioHttpConnector")
DISCOVERY_CLIENTS: Final = {
    "minos.plugins.minos_discovery.MinosDiscoveryClient": "minos",
    "minos.networks.MinosDiscoveryClient": "minos",
    "minos.networks.InMemoryDiscoveryClient": "memory",
}
DISCOVERY_CONNECTORS: Final = ("minos.networks.DiscoveryConnector",)
EXTERNAL_BROKERS: Final = {
    "minos.plugins.kafka.": ("Kafka", 9092),
    "minos.plugins.rabbitmq.": ("RabbitMQ", 5672),
}
"""Plugins whose publishers and subscribers talked to a broker server: ours takes their address."""
MEMORY_CLIENTS: Final = ("minos.networks.InMemoryBrokerPublisher", "minos.networks.InMemoryBrokerSubscriber")
UNUSED_BROKER_PARTS: Final = ("Queue", "DuplicateValidator")
"""0.7's queues and duplicate validators (``minos.networks.*`` or a plugin's): the broker does their work."""
UNUSED: Final = (
    "not used: the broker holds and acknowledges messages and filters duplicates by identifier (for a durable "
    "outbox and inbox: interfaces.broker.durable)"
)
BROKER_POOLS: Final = ("minos.networks.BrokerClientPool",)


@dataclass(slots=True)
class Translation:
    """A configuration in our layout, and what its translation has to say.

    Attributes:
        data: The configuration in our layout.
        layout: ``V1``, ``V2`` or ``OURS``: what the source was.
        notes: One line per thing used instead of what the file named, or left unused; for the start-up log.
        variables: The environment variables read in a 0.7 form, each with the key (ours) it set.
    """

    data: dict[str, Any]
    layout: str
    notes: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)


def detect_layout(raw: Mapping[str, Any]) -> str:
    """Which layout ``raw`` is in: a ``service`` section or ``version: 1`` is v1, ``version: 2`` is v2."""
    version = raw.get("version")
    if (type(version) is int and version == 1) or (
        version is None and isinstance(raw.get("service"), Mapping) and "name" not in raw
    ):
        return V1
    return V2 if type(version) is int and version == 2 else OURS


def translate(
    raw: dict[str, Any],
    environ: Mapping[str, str],
    overrides: Mapping[str, object],
    parse: Callable[[str], object],
) -> Translation:
    """Turn ``raw`` (a copy, changed in place) into our layout, after 0.7's overrides.

    Args:
        raw: The configuration as read.
        environ: The environment; 0.7's variables are read from it for 0.7 files.
        overrides: Keyword overrides in 0.7's forms (``rest_port``, ``interfaces_http_connector_port``).
        parse: Reads a variable's text as the file would hold it (a YAML scalar).

    Raises:
        LayoutError: A 0.7 key names what minos.networks cannot use, or an override names no key.
    """
    layout = detect_layout(raw)
    result = Translation(raw, layout)
    labels: dict[str, str] = {}
    set_by = apply_overrides(raw, layout, environ, overrides, parse)
    if layout == V1:
        raw = _v1_to_v2(raw, labels, result.notes)
    translator = _Translator(labels, result.notes)
    result.data = translator.v2(raw)
    # A variable set a key of the file: rest.port, reshaped into interfaces.http.connector.port, moved to ours.
    v2_keys = {v1_key: v2_key for v2_key, v1_key in labels.items()}
    for old, variable in set_by.items():
        key = v2_keys.get(old, old)
        result.variables[variable] = translator.moved.get(key, key)
    return result


def _v1_to_v2(raw: dict[str, Any], labels: dict[str, str], notes: list[str]) -> dict[str, Any]:
    """Reshape a v1 file into 0.7's v2 layout, remembering each key's v1 name (``labels``) for messages."""
    service = _mapping(raw.pop("service", None) or {}, "service", "name, services ...")
    unknown = sorted(set(service) - set(V1_SERVICE_KEYS))
    if unknown:
        raise LayoutError(
            f"'service.{unknown[0]}' is not a key of 0.7's v1 layout (service has {', '.join(V1_SERVICE_KEYS)}); "
            "remove it or move it to the top level",
            key=f"service.{unknown[0]}",
        )
    raw.pop("version", None)
    v2: dict[str, Any] = {}
    if "name" in service:
        v2["name"] = service["name"]
        labels["name"] = "service.name"
    for key in ("aggregate", "injections"):
        if key in service:
            v2[key] = service[key]
            labels[key] = f"service.{key}"
    ports = service.get("services")
    kinds: set[str] = set()
    if ports is None:  # 0.7 ran no port then; ours runs what the sections describe
        kinds = {"broker", "periodic"} | ({"http"} if "rest" in raw else set())
    else:
        for index, port in enumerate(ports if isinstance(ports, list) else [ports]):
            for kind, known in (("http", HTTP_PORTS), ("broker", BROKER_PORTS), ("periodic", PERIODIC_PORTS)):
                if port in known:
                    kinds.add(kind)
                    break
            else:
                raise _unknown(
                    f"service.services[{index}]", port, "a port", HTTP_PORTS + BROKER_PORTS + PERIODIC_PORTS
                )
    interfaces: dict[str, Any] = {}
    rest = raw.pop("rest", None)
    if "http" in kinds:
        interfaces["http"] = {"connector": dict(rest or {})}
        labels.update(
            {f"interfaces.http.connector.{key}": f"rest.{key}" for key in interfaces["http"]["connector"]}
        )
        labels["interfaces.http.connector"] = "rest"
    elif rest is not None:
        notes.append("rest: not served: service.services lists no minos.networks.RestService (as in 0.7)")
    broker = raw.pop("broker", None)
    if broker is not None:
        broker = _mapping(broker, "broker", "host, port")
        common = {key: broker.pop(key) for key in ("host", "port", "queue") if key in broker}
        interfaces["broker"] = {"common": common, **broker}
        labels.update(
            {f"interfaces.broker.common.{key}": f"broker.{key}" for key in ("host", "port", "queue")}
        )
        labels["interfaces.broker.common"] = "broker.{host,port}"
    elif "broker" in kinds:
        interfaces["broker"] = {}
    if "periodic" in kinds:
        interfaces["periodic"] = {}
    v2["interfaces"] = _merge(interfaces, raw.pop("interfaces", None) or {})
    v2.update(raw)  # services, middleware, routers, discovery, the foreign sections and our own keys
    return v2


def _merge(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """``theirs`` with ``ours`` laid over it, section by section: ours win."""
    merged = dict(theirs)
    for key, value in ours.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _mapping(value: object, key: str, keys: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LayoutError(f"'{key}' must be a mapping ({keys}), got {value!r}", key=key)
    return value


def _unknown(key: str, value: object, what: str, known: tuple[str, ...]) -> LayoutError:
    return LayoutError(
        f"'{key}' names {value!r}, which is not {what} minos.networks knows or maps; write one of "
        f"{', '.join(known)}, or remove the key",
        key=key,
    )


class _Translator:
    """0.7's v2 layout into ours; ``labels`` gives each key the name the file used (v1 keys for a v1 file)."""

    def __init__(self, labels: dict[str, str], notes: list[str]) -> None:
        self.labels = labels
        self.notes = notes
        self.moved: dict[str, str] = {}
        self.foreign: list[str] = []

    def label(self, key: str) -> str:
        return self.labels.get(key, key)

    def v2(self, raw: dict[str, Any]) -> dict[str, Any]:
        # Sections of other packages stay readable with Config.get (a user's own code may read them).
        self.foreign.extend(
            f"{self.label(key)} ({owner})" for key, owner in FOREIGN_SECTIONS.items() if key in raw
        )
        if "pools" in raw:
            self.pools(raw["pools"])
        interfaces = raw.get("interfaces")
        if isinstance(interfaces, dict):
            for name, read in (("http", self.http), ("broker", self.broker), ("periodic", self.periodic)):
                if isinstance(interfaces.get(name), dict):
                    read(interfaces[name])
        if isinstance(raw.get("discovery"), dict):
            self.discovery(raw["discovery"])
        for key in ("services", "middleware", "routers"):
            if isinstance(raw.get(key), list):
                raw[key] = self.entries(key, raw[key])
        if self.foreign:
            self.notes.insert(
                0, "not used by minos.networks (other minos packages own them): " + "; ".join(self.foreign)
            )
        return raw

    def take(self, section: dict[str, Any], ours: str, theirs: dict[str, Any], name: str, key: str) -> None:
        """Move ``theirs[name]`` to ``section[ours]`` unless ours is set already (then ours wins, said)."""
        if name not in theirs:
            return
        value = theirs.pop(name)
        if ours in section:
            if section[ours] != value:
                self.notes.append(
                    f"{self.label(key)}: {value!r} is overridden by {section[ours]!r} of our own key"
                )
            return
        section[ours] = value
        self.moved[key] = f"{key.rsplit('.', 2)[0]}.{ours}"  # interfaces.http.connector.port -> .http.port

    def leftovers(self, theirs: dict[str, Any], key: str, known: tuple[str, ...]) -> None:
        if theirs:
            name = sorted(theirs)[0]
            label = self.label(f"{key}.{name}")
            raise LayoutError(
                f"'{label}' is not a key of 0.7's {self.label(key)} (it had {', '.join(known)}); remove it",
                key=label,
            )

    def port_class(self, section: dict[str, Any], key: str, known: tuple[str, ...]) -> None:
        if isinstance(section.get("port"), str) and "." in section["port"]:  # else a wrong port number
            value = section.pop("port")
            if value not in known:
                raise _unknown(f"{key}.port", value, "a port class", known)

    def http(self, section: dict[str, Any]) -> None:
        key = "interfaces.http"
        self.port_class(section, key, HTTP_PORTS)
        connector = section.pop("connector", None)
        if connector is None:
            return
        connector = _mapping(connector, f"{key}.connector", "client, host, port")
        client = connector.pop("client", None)
        if client is not None and client not in HTTP_CONNECTORS:
            raise _unknown(f"{key}.connector.client", client, "an HTTP connector", HTTP_CONNECTORS)
        if client is not None and client != "minos.networks.AioHttpConnector":
            self.notes.append(
                f"{key}.connector.client {client} -> minos.networks.AioHttpConnector (built in)"
            )
        for name in ("host", "port"):
            self.take(section, name, connector, name, f"{key}.connector.{name}")
        self.leftovers(connector, f"{key}.connector", ("client", "host", "port"))

    def periodic(self, section: dict[str, Any]) -> None:
        self.port_class(section, "interfaces.periodic", PERIODIC_PORTS)

    def broker(self, section: dict[str, Any]) -> None:
        key = "interfaces.broker"
        self.port_class(section, key, BROKER_PORTS)
        server: tuple[str, int] | None = None
        memory = False
        for side, known in (
            ("publisher", ("client", "queue")),
            ("subscriber", ("client", "queue", "validator", "idempotent")),
        ):
            part = section.pop(side, None)
            if part is None:
                continue
            part = _mapping(part, f"{key}.{side}", ", ".join(known))
            for name in known:
                value = part.pop(name, None)
                if value is None:
                    continue
                where = f"{key}.{side}.{name}"
                external = next((v for k, v in EXTERNAL_BROKERS.items() if str(value).startswith(k)), None)
                if name == "client" and external is not None:
                    server = server or external
                    self.notes.append(
                        f"{self.label(where)} {value} -> the minos.networks broker (no {external[0]})"
                    )
                elif name == "client" and any(str(value).startswith(path) for path in MEMORY_CLIENTS):
                    memory = True
                    self.notes.append(
                        f"{self.label(where)} {value} -> transport: memory (the in-process twin)"
                    )
                elif (
                    name != "client"
                    and str(value).startswith(("minos.networks.", "minos.plugins."))
                    and any(part_name in str(value) for part_name in UNUSED_BROKER_PARTS)
                ):
                    self.notes.append(f"{self.label(where)} {value}: {UNUSED}")
                else:
                    raise LayoutError(
                        f"'{self.label(where)}' names {value!r}, which minos.networks cannot map: its broker "
                        "replaces 0.7's Kafka and RabbitMQ clients, in-memory twins, queues and duplicate "
                        f"validators; remove {key}.{side} and set {key}.endpoint to a `minos-networks broker`",
                        key=self.label(where),
                    )
            self.leftovers(part, f"{key}.{side}", known)
        common = _mapping(section.pop("common", None) or {}, self.label(f"{key}.common"), "host, port")
        if common.pop("queue", None) is not None:
            self.notes.append(f"{self.label(f'{key}.common.queue')} (0.7's database queue): {UNUSED}")
        host, port = common.pop("host", None), common.pop("port", None)
        self.leftovers(common, f"{key}.common", ("host", "port", "queue"))
        if memory and "transport" not in section:
            section["transport"] = "memory"
            return
        if host is None and port is None and server is None:
            return
        server_name, default_port = server or ("Kafka", 9092)
        endpoint = f"tcp://{host or 'localhost'}:{port or default_port}"
        label = self.label(f"{key}.common")
        if "endpoint" in section or "transport" in section:
            self.notes.append(
                f"{label} ({endpoint}) is overridden by {key}.endpoint/transport of our own keys"
            )
            return
        section["endpoint"] = endpoint
        section.setdefault("embedded", False)
        for name in ("host", "port"):
            self.moved[f"{key}.common.{name}"] = f"{key}.endpoint"
        self.notes.append(
            f"{label} -> {key}.endpoint {endpoint}: a `minos-networks broker --bind {endpoint}` must listen there "
            f"(0.7 reached {server_name} there)"
        )

    def discovery(self, section: dict[str, Any]) -> None:
        connector = section.pop("connector", None)
        if connector is not None and connector not in DISCOVERY_CONNECTORS:
            raise _unknown("discovery.connector", connector, "a discovery connector", DISCOVERY_CONNECTORS)
        client = section.get("client")
        if isinstance(client, str) and client in DISCOVERY_CLIENTS:
            section["client"] = DISCOVERY_CLIENTS[client]
            if client.startswith("minos.plugins."):
                self.notes.append(
                    f"discovery.client {client} -> minos.networks.MinosDiscoveryClient (built in)"
                )
        elif isinstance(client, str) and client.startswith("minos.plugins."):
            what = "Kong client" if ".kong." in client else "client for this plugin"
            raise LayoutError(
                f"'discovery.client' names {client!r}: minos.networks has no {what}; write discovery.client: minos "
                "(the Minos discovery service), or the import path of your own DiscoveryClient subclass",
                key="discovery.client",
            )

    def pools(self, pools: object) -> None:
        for name, value in _mapping(pools, "pools", "names of pool classes").items():
            if value in BROKER_POOLS:
                self.notes.append(
                    f"pools.{name} {value}: not needed: use BrokerClientPool.from_config(config) where you need one"
                )
            else:  # minos.common's lock and database pools, or a pool of the service's own
                self.foreign.append(f"pools.{name} ({value})")

    def entries(self, key: str, items: list[Any]) -> list[Any]:
        """The list without entries of other minos packages that are not installed (named in the warning)."""
        kept = []
        for index, item in enumerate(items):
            package = ".".join(item.split(".")[:2]) if isinstance(item, str) else ""
            if package == "minos.plugins":
                raise LayoutError(
                    f"'{key}[{index}]' names {item!r}, a minos 0.7 plugin minos.networks has no counterpart "
                    "for; remove it (routes, ports and their connectors are built in)",
                    key=f"{key}[{index}]",
                )
            if package in FOREIGN_PACKAGES and importlib.util.find_spec(package) is None:
                self.foreign.append(f"{key}: {item} ({package} is not installed)")
            else:
                kept.append(item)
        return kept
