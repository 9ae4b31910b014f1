"""Every ``from_config`` takes a Config, the path of a YAML file (str or Path) or a mapping, as 0.7's did."""

import inspect
from pathlib import Path

import pytest

import minos.networks
from minos.common import Config
from minos.networks import (
    BrokerClient,
    BrokerPort,
    BrokerPublisher,
    BrokerSubscriber,
    HttpPort,
    InMemoryBrokerPublisher,
    InMemoryBrokerSubscriber,
    InMemoryDiscoveryClient,
    MinosDiscoveryClient,
    PeriodicPort,
)


def _all_from_configs():
    """Every class of the package with a ``from_config``, found by walking the public modules."""
    import importlib
    import pkgutil

    found = {}
    for module_info in pkgutil.walk_packages(minos.networks.__path__, "minos.networks."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if value.__module__.startswith("minos.networks") and "from_config" in vars(value):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_every_from_config_of_the_package_declares_that_it_takes_any_config_source():
    classes = _all_from_configs()
    assert len(classes) >= 19  # so the walk above found them
    wrong = {
        name: str(inspect.signature(klass.from_config).parameters["config"].annotation)
        for name, klass in classes.items()
        if inspect.signature(klass.from_config).parameters["config"].annotation != "ConfigSource"
    }
    assert wrong == {}


@pytest.fixture
def yaml_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(
        "name: carts\ninterfaces:\n  broker:\n    transport: memory\n    endpoint: memory-carts\n"
    )
    return path


@pytest.mark.parametrize("form", ["Config", "str", "Path", "mapping"])
def test_the_ports_clients_and_twins_are_built_from_each_form_of_config(yaml_file, form):
    mapping = {"name": "carts", "interfaces": {"broker": {"transport": "memory", "endpoint": "memory-carts"}}}
    source = {"Config": Config(yaml_file), "str": str(yaml_file), "Path": yaml_file, "mapping": mapping}[form]

    built = [
        HttpPort.from_config(source),
        BrokerPort.from_config(source),
        PeriodicPort.from_config(source),
        BrokerPublisher.from_config(source),
        BrokerSubscriber.from_config(source, ["carts.events"]),
        BrokerClient.from_config(source),
        MinosDiscoveryClient.from_config(source),
        InMemoryBrokerPublisher.from_config(source),
        InMemoryBrokerSubscriber.from_config(source, topics=["carts.events"]),
        InMemoryDiscoveryClient.from_config(source),
    ]

    assert built[0].name == "carts-http-port"
    assert [type(item) for item in built[3:6]] == [BrokerPublisher, BrokerSubscriber, BrokerClient]
    assert built[8].topics == {"carts.events"}
    assert (built[9].host, built[9].port) == ("localhost", 5567)
    assert isinstance(built[7], InMemoryBrokerPublisher)
