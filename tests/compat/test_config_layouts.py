"""minos 0.7's config files (v1 and v2) read as our layout: what each key becomes, overrides, and the notes."""

import logging
import sys
from pathlib import Path

import pytest

from minos.common import Config, ConfigError

HERE = Path(__file__).resolve().parent
V1_FILE = HERE / "config_v1.yml"
V2_FILE = HERE / "config_v2.yml"


@pytest.fixture(autouse=True)
def service_module_on_path(monkeypatch):
    """``config_service`` (named in config_v1.yml and config_v2.yml) imports, as it would beside a 0.7 service."""
    monkeypatch.syspath_prepend(str(HERE))
    yield
    sys.modules.pop("config_service", None)


# 1. the v2 layout -------------------------------------------------------------------------------------------


def test_a_v2_file_in_0_7_layout_takes_the_http_address_from_the_connector_and_the_broker_from_common():
    config = Config(V2_FILE, environ={})

    assert config.name == "carts"
    assert config.get_interface("http") == {"host": "127.0.0.1", "port": 4545}
    assert config.get_interface("broker") == {"endpoint": "tcp://localhost:9092", "embedded": False}
    assert config.get_interface("periodic") == {}
    assert config.routers == [
        "minos.networks.BrokerRouter",
        "minos.networks.PeriodicRouter",
        "minos.networks.RestHttpRouter",
    ]
    assert config.services == ["minos.networks.SystemService", "config_service.CartService"]
    assert config.discovery == {"client": "minos", "host": "localhost", "port": 5567}


def test_our_own_keys_win_over_the_0_7_keys_beside_them_and_the_override_is_said():
    config = Config(
        {
            "version": 2,
            "name": "carts",
            "interfaces": {
                "http": {"port": 9000, "connector": {"host": "0.0.0.0", "port": 4545}},
                "broker": {"endpoint": "ipc:///tmp/ours", "common": {"host": "kafka", "port": 9092}},
            },
        },
        environ={},
    )

    assert config.get_interface("http") == {"host": "0.0.0.0", "port": 9000}
    assert config.get_interface("broker") == {"endpoint": "ipc:///tmp/ours"}
    assert "interfaces.http.connector.port: 4545 is overridden by 9000 of our own key" in config.notes


# 2. the v1 layout -------------------------------------------------------------------------------------------


def test_a_v1_file_of_the_tutorials_reads_name_rest_broker_discovery_and_the_services():
    config = Config(V1_FILE, environ={})

    assert config.name == "carts"
    assert config.get_interface("http") == {"host": "127.0.0.1", "port": 8080}
    assert config.get_interface("broker") == {"endpoint": "tcp://localhost:9092", "embedded": False}
    assert config.has_interface("periodic")
    assert config.services == ["config_service.CartService"]
    assert config.middleware == []
    assert config.discovery == {"client": "minos", "host": "localhost", "port": 5567}


def test_a_v1_file_without_a_service_name_names_the_v1_key_and_its_variable(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(
        "service:\n  services: [minos.networks.RestService]\nrest: {host: localhost, port: 8080}\n"
    )

    with pytest.raises(ConfigError) as caught:
        Config(path, environ={})

    assert caught.value.key == "service.name"
    assert "MINOS_SERVICE_NAME" in str(caught.value)


def test_a_v1_port_that_is_not_one_of_ours_is_an_error_naming_it(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("service:\n  name: x\n  services: [minos.networks.ConsumerService]\n")

    with pytest.raises(ConfigError) as caught:
        Config(path, environ={})

    assert caught.value.key == "service.services[0]"
    assert "'minos.networks.ConsumerService'" in str(caught.value)
    assert "minos.networks.RestService" in str(caught.value)


# 3. 0.7's environment variables ---------------------------------------------------------------------------


def test_config_v1_variables_override_a_v1_file_and_ours_win_over_them():
    environ = {
        "MINOS_SERVICE_NAME": "baskets",
        "MINOS_REST_PORT": "9100",
        "MINOS_BROKER_HOST": "10.0.0.5",
        "MINOS_BROKER_PORT": "5555",
        "MINOS_DISCOVERY_HOST": "discovery.local",
        "MINOS_DISCOVERY_PORT": "5568",
        "MINOS_INTERFACES__HTTP__HOST": "0.0.0.0",
    }

    config = Config(V1_FILE, environ=environ)

    assert config.name == "baskets"
    assert config.get_interface("http") == {"host": "0.0.0.0", "port": 9100}
    assert config.get_str("interfaces.broker.endpoint") == "tcp://10.0.0.5:5555"
    assert config.discovery == {"client": "minos", "host": "discovery.local", "port": 5568}
    assert config.get("rest_port", None) is None  # read as 0.7's variable, not as a key of its own


def test_config_v2_single_underscore_variables_override_a_v2_file():
    environ = {
        "MINOS_NAME": "baskets",
        "MINOS_INTERFACES_HTTP_CONNECTOR_PORT": "9200",
        "MINOS_INTERFACES_BROKER_COMMON_HOST": "broker.local",
        "MINOS_DISCOVERY_PORT": "5568",
    }

    config = Config(V2_FILE, environ=environ)

    assert config.name == "baskets"
    assert config.get_int("interfaces.http.port") == 9200
    assert config.get_str("interfaces.broker.endpoint") == "tcp://broker.local:9092"
    assert config.get_int("discovery.port") == 5568


def test_a_bad_value_from_a_0_7_variable_names_the_variable():
    config = Config(V1_FILE, environ={"MINOS_REST_PORT": "eighty"})

    with pytest.raises(ConfigError) as caught:
        config.get_int("interfaces.http.port")

    assert caught.value.key == "interfaces.http.port"
    assert "MINOS_REST_PORT" in str(caught.value)


# 4. nothing silently ignored ------------------------------------------------------------------------------


def test_the_sections_of_other_minos_packages_are_named_in_one_warning_and_mapped_plugins_in_a_line_each():
    notes = Config(V2_FILE, environ={}).notes

    foreign = [note for note in notes if note.startswith("not used by minos.networks")]
    assert len(foreign) == 1
    for section in (
        "aggregate",
        "databases",
        "saga",
        "pools.lock",
        "pools.database",
        "minos.saga.SagaService",
    ):
        assert section in foreign[0]
    assert (
        "interfaces.http.connector.client minos.plugins.aiohttp.AioHttpConnector -> "
        "minos.networks.AioHttpConnector (built in)"
    ) in notes
    assert (
        "discovery.client minos.plugins.minos_discovery.MinosDiscoveryClient -> "
        "minos.networks.MinosDiscoveryClient (built in)"
    ) in notes
    endpoint = [note for note in notes if "interfaces.broker.endpoint tcp://localhost:9092" in note]
    assert len(endpoint) == 1
    assert "a `minos-networks broker --bind tcp://localhost:9092` must listen there" in endpoint[0]


def test_the_notes_are_logged_once_when_the_first_port_is_built_from_the_config(caplog):
    from minos.networks import PeriodicPort

    config = Config(V1_FILE, environ={})
    with caplog.at_level(logging.WARNING, logger="minos.common.config"):
        PeriodicPort.from_config(config)
        PeriodicPort.from_config(config)

    logged = [record.getMessage() for record in caplog.records if record.name == "minos.common.config"]
    assert logged == [f"{V1_FILE}: {note}" for note in config.notes]
    assert any("service.aggregate (minos.aggregate)" in line for line in logged)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("discovery.client", "minos.plugins.kong.KongDiscoveryClient", "no Kong client"),
        ("interfaces.http.connector.client", "minos.plugins.graphql.GraphQlConnector", "an HTTP connector"),
        (
            "interfaces.broker.publisher.client",
            "acme.brokers.FancyPublisher",
            "set interfaces.broker.endpoint",
        ),
        ("interfaces.http.port", "acme.ports.FancyPort", "a port class"),
        (
            "routers",
            ["minos.networks.RestHttpRouter", "minos.plugins.graphql.GraphQlHttpRouter"],
            "no counterpart",
        ),
    ],
)
def test_a_0_7_class_path_that_cannot_be_mapped_is_an_error_naming_it_and_what_to_write(key, value, says):
    data: dict = {"version": 2, "name": "carts"}
    node = data
    *sections, last = key.split(".")
    for section in sections:
        node = node.setdefault(section, {})
    node[last] = value

    with pytest.raises(ConfigError) as caught:
        Config(data, environ={})

    assert caught.value.key == (key if isinstance(value, str) else f"{key}[1]")
    assert repr(value if isinstance(value, str) else value[1]) in str(caught.value)
    assert says in str(caught.value)


# 5. Config(path, **overrides) -----------------------------------------------------------------------------


def test_keyword_overrides_take_0_7_s_names_for_a_v1_file_and_key_paths_for_a_v2_file():
    v1 = Config(V1_FILE, environ={}, service_name="baskets", rest_port=0, broker_host="127.0.0.1")
    v2 = Config(V2_FILE, environ={}, name="baskets", interfaces_http_connector_port=0)
    ours = Config({"name": "x", "interfaces": {"http": {}}}, environ={}, interfaces_http_port=1234)

    assert (v1.name, v1.get_int("interfaces.http.port")) == ("baskets", 0)
    assert v1.get_str("interfaces.broker.endpoint") == "tcp://127.0.0.1:9092"
    assert (v2.name, v2.get_int("interfaces.http.port")) == ("baskets", 0)
    assert ours.get_int("interfaces.http.port") == 1234


def test_a_keyword_override_that_names_no_key_is_an_error():
    with pytest.raises(ConfigError) as caught:
        Config(V2_FILE, environ={}, nmae="baskets")

    assert caught.value.key == "nmae"


def test_with_environment_false_reads_no_variable():
    config = Config(V1_FILE, with_environment=False)

    assert config.get_int("interfaces.http.port") == 8080


def test_an_unknown_key_of_a_0_7_section_is_an_error_named_as_the_file_spells_it(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(
        "service:\n  name: x\n  services: [minos.networks.RestService]\nrest: {host: h, port: 1, ssl: true}\n"
    )

    with pytest.raises(ConfigError) as caught:
        Config(path, environ={})

    assert caught.value.key == "rest.ssl"
    assert "0.7's rest (it had client, host, port)" in str(caught.value)


def test_the_sections_of_other_minos_packages_stay_readable_for_the_service_s_own_code():
    config = Config(V2_FILE, environ={})

    assert config.get_str("databases.default.database") == "cart_db"
    assert config.get_str("saga.manager") == "minos.saga.SagaManager"


def test_a_stray_single_underscore_variable_sets_no_key_a_v2_file_lacks():
    config = Config(V2_FILE, environ={"MINOS_DISCOVERY_SERVICE_URL": "http://elsewhere"})

    assert config.discovery == {"client": "minos", "host": "localhost", "port": 5567}
