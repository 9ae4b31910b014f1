from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import minos.common
from minos.common import Config, ConfigError, MinosException

FULL_YAML = """\
name: orders
version: 2
interfaces:
  broker:
    endpoint: tcp://localhost:9092
    window: 100
  http:
    host: 0.0.0.0
    port: 8080
    metrics: false
    shutdown_timeout: 2.5
  periodic:
    stop_timeout: 1
services:
  - orders.services.OrderCommandService
  - orders.services.OrderQueryService
middleware:
  - orders.middleware.auth
routers:
  - minos.networks.BrokerRouter
discovery:
  host: discovery.local
  port: 5567
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "orders.yml"
    path.write_text(FULL_YAML, encoding="utf-8")
    return path


def write(tmp_path: Path, text: str, name: str = "service.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def minimal(**extra: Any) -> dict[str, Any]:
    return {"name": "orders", **extra}


class OrderService:
    pass


async def auth_middleware(request: object, inner: Callable[[object], object]) -> object:
    return inner(request)


# -- the package --------------------------------------------------------------------------------------------


def test_the_package_exports_config_its_error_and_the_root_exception() -> None:
    assert minos.common.__all__ == [
        "TOP_LEVEL_KEYS",
        "Config",
        "ConfigError",
        "ConfigSource",
        "EntrypointLauncher",
        "KnownKeys",
        "MinosException",
        "as_config",
    ]


def test_a_config_error_is_both_a_minos_exception_and_a_value_error() -> None:
    assert issubclass(ConfigError, MinosException)
    assert issubclass(ConfigError, ValueError)


# -- loading ------------------------------------------------------------------------------------------------


def test_a_yaml_file_is_loaded_with_every_v2_section(config_file: Path) -> None:
    config = Config(config_file, environ={})

    assert config.name == "orders"
    assert config.path == config_file
    assert config.source == str(config_file)
    assert config.services == ["orders.services.OrderCommandService", "orders.services.OrderQueryService"]
    assert config.middleware == ["orders.middleware.auth"]
    assert config.routers == ["minos.networks.BrokerRouter"]
    assert config.interfaces["http"] == {
        "host": "0.0.0.0",
        "port": 8080,
        "metrics": False,
        "shutdown_timeout": 2.5,
    }
    assert config.discovery == {"host": "discovery.local", "port": 5567}
    assert config.get_int("discovery.port") == 5567


def test_a_file_path_may_be_given_as_a_string(config_file: Path) -> None:
    config = Config(str(config_file), environ={})

    assert config.path == config_file
    assert config.name == "orders"


def test_a_dict_is_loaded_and_keeps_classes_and_callables() -> None:
    config = Config(
        minimal(services=[OrderService, "orders.services.Other"], middleware=[auth_middleware]),
        environ={},
    )

    assert config.path is None
    assert config.source == "<dict>"
    assert config.services == [OrderService, "orders.services.Other"]
    assert config.middleware == [auth_middleware]


def test_absent_optional_sections_are_empty() -> None:
    config = Config(minimal(), environ={})

    assert config.services == []
    assert config.middleware == []
    assert config.routers == []
    assert config.interfaces == {}
    assert config.discovery == {}
    assert not config.has_interface("http")


def test_changing_the_source_dict_or_a_returned_value_leaves_the_config_as_it_was() -> None:
    source = minimal(interfaces={"http": {"port": 8080}}, services=["a.B"])
    config = Config(source, environ={})

    source["interfaces"]["http"]["port"] = 1
    config.get_interface("http")["port"] = 2
    config.services.append("c.D")

    assert config.get_int("interfaces.http.port") == 8080
    assert config.services == ["a.B"]


def test_the_repr_shows_the_source(config_file: Path) -> None:
    assert repr(Config(config_file, environ={})) == f"Config({str(config_file)!r}, name='orders')"
    assert repr(Config(minimal(), environ={})) == "Config(<dict>, name='orders')"


# -- environment overrides ----------------------------------------------------------------------------------


def test_an_env_variable_overrides_a_top_level_key(config_file: Path) -> None:
    config = Config(config_file, environ={"MINOS_NAME": "payments"})

    assert config.name == "payments"


def test_an_env_variable_overrides_a_nested_key(config_file: Path) -> None:
    config = Config(config_file, environ={"MINOS_INTERFACES__HTTP__PORT": "9090"})

    assert config.get_int("interfaces.http.port") == 9090
    assert config.get_str("interfaces.http.host") == "0.0.0.0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080", 8080),
        ("2.5", 2.5),
        ("true", True),
        ("false", False),
        ("hello", "hello"),
        ("'8080'", "8080"),
        ("", None),
        ("[1, 2]", "[1, 2]"),
        ("{a: 1}", "{a: 1}"),
        ("@odd", "@odd"),
    ],
)
def test_an_env_value_is_parsed_as_a_yaml_scalar(text: str, expected: object) -> None:
    config = Config(minimal(), environ={"MINOS_SETTING": text})

    assert config.get("setting") == expected
    assert type(config.get("setting")) is type(expected)


def test_an_env_variable_adds_a_key_the_source_lacks() -> None:
    config = Config(minimal(), environ={"MINOS_INTERFACES__HTTP__PORT": "8080"})

    assert config.has_interface("http")
    assert config.get_interface("http") == {"port": 8080}


def test_an_env_variable_matches_an_existing_key_whatever_its_case() -> None:
    config = Config(minimal(Interfaces={"HTTP": {"Port": 1}}), environ={"MINOS_INTERFACES__HTTP__PORT": "2"})

    assert config.get("Interfaces.HTTP.Port") == 2


def test_a_nested_env_variable_refines_a_shallower_one() -> None:
    environ = {"MINOS_INTERFACES__HTTP__PORT": "9090", "MINOS_INTERFACES__HTTP": "plain"}

    with pytest.raises(ConfigError) as caught:
        Config(minimal(), environ=environ)

    # The shallower variable is applied first, so the nested one meets a string, not a mapping.
    assert "MINOS_INTERFACES__HTTP__PORT" in str(caught.value)
    assert "'interfaces.http'" in str(caught.value)
    assert "'plain'" in str(caught.value)


def test_variables_without_the_minos_prefix_are_ignored() -> None:
    config = Config(minimal(), environ={"NAME": "other", "minos_name": "other", "HOME": "/root"})

    assert config.name == "orders"
    assert config.get("home", default=None) is None


def test_an_env_variable_with_an_empty_segment_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"'MINOS_INTERFACES____PORT' does not name a config key"):
        Config(minimal(), environ={"MINOS_INTERFACES____PORT": "1"})


def test_a_bad_value_from_the_environment_names_the_variable(config_file: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        Config(config_file, environ={"MINOS_SERVICES": "orders.services.OrderCommandService"})

    message = str(caught.value)
    assert "'services'" in message
    assert str(config_file) in message
    assert "set by environment variable MINOS_SERVICES" in message
    assert "Fix or unset MINOS_SERVICES." in message


# -- typed getters ------------------------------------------------------------------------------------------


def test_get_reads_a_dotted_path_of_any_type(config_file: Path) -> None:
    config = Config(config_file, environ={})

    assert config.get("interfaces.broker.window") == 100
    assert config.get("interfaces.broker") == {"endpoint": "tcp://localhost:9092", "window": 100}
    assert config.get("interfaces.nothing.here", default="fallback") == "fallback"
    assert config.get("name.inside.a.string", default=None) is None


def test_each_typed_getter_returns_a_value_of_its_type(config_file: Path) -> None:
    config = Config(config_file, environ={})

    assert config.get_str("interfaces.http.host") == "0.0.0.0"
    assert config.get_int("interfaces.http.port") == 8080
    assert config.get_float("interfaces.http.shutdown_timeout") == 2.5
    assert config.get_bool("interfaces.http.metrics") is False
    assert config.get_list("middleware") == ["orders.middleware.auth"]
    assert config.get_mapping("discovery") == {"host": "discovery.local", "port": 5567}


def test_an_int_is_accepted_as_a_float_and_returned_as_one(config_file: Path) -> None:
    value = Config(config_file, environ={}).get_float("interfaces.http.port")

    assert value == 8080.0
    assert type(value) is float


def test_a_default_is_returned_unchanged_when_the_key_is_absent() -> None:
    config = Config(minimal(), environ={})

    assert config.get_str("interfaces.http.host", default=None) is None
    assert config.get_int("interfaces.http.port", default=8080) == 8080
    assert config.get_float("interfaces.http.shutdown_timeout", default=1) == 1
    assert config.get_bool("interfaces.http.metrics", default=True) is True
    assert config.get_list("routers", default=[]) == []
    assert config.get_mapping("discovery", default={}) == {}


GETTERS: list[tuple[str, str, object]] = [
    ("get_str", "a string", 8080),
    ("get_int", "an int", "8080"),
    ("get_int", "an int", True),
    ("get_int", "an int", 2.5),
    ("get_float", "a number (int or float)", "2.5"),
    ("get_float", "a number (int or float)", False),
    ("get_bool", "a bool (true or false)", "yes please"),
    ("get_bool", "a bool (true or false)", 1),
    ("get_list", "a list", "a.B"),
    ("get_list", "a list", {"a": 1}),
    ("get_mapping", "a mapping", ["a"]),
    ("get_mapping", "a mapping", 3),
]


@pytest.mark.parametrize(("getter", "expected", "value"), GETTERS)
def test_a_value_of_the_wrong_type_names_the_key_the_file_the_value_and_the_expected_type(
    tmp_path: Path, getter: str, expected: str, value: object
) -> None:
    # Python's repr of these values is also valid YAML for them.
    path = write(tmp_path, f"name: orders\nextra:\n  setting: {value!r}\n")
    config = Config(path, environ={})

    with pytest.raises(ConfigError) as caught:
        getattr(config, getter)("extra.setting")

    assert str(caught.value) == (
        f"Config key 'extra.setting' in {path} must be {expected}, but found {value!r} "
        f"({type(value).__name__}). Fix the value in {path}."
    )
    assert caught.value.key == "extra.setting"
    assert caught.value.source == str(path)


def test_a_wrong_type_in_a_dict_names_the_dict_source() -> None:
    config = Config(minimal(extra={"port": "8080"}), environ={})

    with pytest.raises(
        ConfigError, match=r"^Config key 'extra\.port' in <dict> must be an int, but found '8080'"
    ):
        config.get_int("extra.port")


@pytest.mark.parametrize(
    "getter", ["get", "get_str", "get_int", "get_float", "get_bool", "get_list", "get_mapping"]
)
def test_a_missing_required_key_names_the_key_the_file_and_the_variable_to_set(
    config_file: Path, getter: str
) -> None:
    config = Config(config_file, environ={})

    with pytest.raises(ConfigError) as caught:
        getattr(config, getter)("interfaces.http.certificate")

    message = str(caught.value)
    assert message.startswith(
        f"Config key 'interfaces.http.certificate' is missing from {config_file}; expected "
    )
    assert message.endswith("found nothing. Add it to the file or set MINOS_INTERFACES__HTTP__CERTIFICATE.")
    assert caught.value.key == "interfaces.http.certificate"


def test_a_missing_key_in_a_dict_source_says_to_add_it_to_the_dict() -> None:
    with pytest.raises(
        ConfigError, match=r"missing from <dict>; expected an int, found nothing\. Add it to the dict"
    ):
        Config(minimal(), environ={}).get_int("interfaces.http.port")


def test_a_key_with_an_empty_segment_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"'interfaces\.\.port' is not a dotted path"):
        Config(minimal(), environ={}).get("interfaces..port")


# -- interfaces ---------------------------------------------------------------------------------------------


def test_get_interface_returns_the_settings_of_that_interface(config_file: Path) -> None:
    config = Config(config_file, environ={})

    assert config.has_interface("broker")
    assert config.get_interface("broker") == {"endpoint": "tcp://localhost:9092", "window": 100}
    assert config.get_interface("periodic") == {"stop_timeout": 1}


def test_an_absent_interface_names_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, "name: orders\ninterfaces:\n  http: {port: 8080}\n")
    config = Config(path, environ={})

    assert not config.has_interface("broker")
    with pytest.raises(ConfigError, match=r"'interfaces\.broker' is missing from .*service\.yml"):
        config.get_interface("broker")


# -- malformed sources --------------------------------------------------------------------------------------


def test_a_missing_file_names_the_path_and_chains_the_os_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yml"

    with pytest.raises(ConfigError) as caught:
        Config(path, environ={})

    assert f"Config file {str(path)!r} cannot be read" in str(caught.value)
    assert "Check the path." in str(caught.value)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_a_file_that_is_not_yaml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: orders\ninterfaces: [http\n  broker: {}\n")

    with pytest.raises(ConfigError) as caught:
        Config(path, environ={})

    message = str(caught.value)
    assert message.startswith(f"Config file {str(path)!r} is not valid YAML: ")
    assert "at line 3" in message
    assert message.endswith("Fix the syntax.")


def test_a_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))

    with pytest.raises(ConfigError, match=r"latin1\.yml' is not UTF-8 text"):
        Config(path, environ={})


@pytest.mark.parametrize(("text", "found"), [("- a\n- b\n", "['a', 'b']"), ("just text\n", "'just text'")])
def test_a_file_whose_top_level_is_not_a_mapping_names_the_file(
    tmp_path: Path, text: str, found: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        Config(path, environ={})

    message = str(caught.value)
    assert f"Config {path} must hold a mapping at the top level" in message
    assert f"but found {found}" in message


def test_an_empty_file_reports_the_missing_name(tmp_path: Path) -> None:
    path = write(tmp_path, "")

    with pytest.raises(ConfigError, match=r"^Config key 'name' is missing from .*service\.yml"):
        Config(path, environ={})


@pytest.mark.parametrize(
    ("text", "key", "found", "expected"),
    [
        ("interfaces: 3", "interfaces", "3 (int)", "a mapping"),
        ('services: "x.Y"', "services", "'x.Y' (str)", "a list"),
        ("middleware: {a: 1}", "middleware", "{'a': 1} (dict)", "a list"),
        ("routers: 1", "routers", "1 (int)", "a list"),
        ("discovery: [a]", "discovery", "['a'] (list)", "a mapping"),
        (
            "interfaces:\n  http: 8080",
            "interfaces.http",
            "8080 (int)",
            "a mapping (write {} for no settings)",
        ),
        ("interfaces:\n  broker:", "interfaces.broker", "None (NoneType)", "a mapping"),
        ("services: [OrderService]", "services[0]", "'OrderService' (str)", "an import path"),
        ("middleware: [a.b, 3]", "middleware[1]", "3 (int)", "an import path"),
        ("routers: ['pkg.mod.']", "routers[0]", "'pkg.mod.' (str)", "an import path"),
        ("version: 3", "version", "3 (int)", "2 (or 1, minos 0.7's v1 layout with a service section)"),
        ("version: '2'", "version", "'2' (str)", "2 (or 1, minos 0.7's v1 layout with a service section)"),
    ],
)
def test_a_section_of_the_wrong_type_fails_at_construction_naming_the_file_and_the_key(
    tmp_path: Path, text: str, key: str, found: str, expected: str
) -> None:
    path = write(tmp_path, f"name: orders\n{text}\n")

    with pytest.raises(ConfigError) as caught:
        Config(path, environ={})

    message = str(caught.value)
    assert message.startswith(f"Config key {key!r} in {path} must be {expected}")
    assert f"but found {found}." in message
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("source", "found"),
    [({}, None), ({"name": 3}, "3 (int)"), ({"name": ""}, "'' (str)")],
)
def test_the_name_is_required_and_must_be_a_non_empty_string(
    source: dict[str, Any], found: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        Config(source, environ={})

    assert caught.value.key == "name"
    if found is None:
        assert "'name' is missing from <dict>" in str(caught.value)
    else:
        assert "'name' in <dict> must be a" in str(caught.value)
        assert f"but found {found}." in str(caught.value)


def test_a_dict_with_classes_in_the_wrong_section_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"'services\[0\]' in <dict> must be an import path .* or a class"):
        Config(minimal(services=[auth_middleware]), environ={})


# -- unknown keys -------------------------------------------------------------------------------------------

KNOWN: dict[str, Any] = {
    "endpoint": None,
    "window": None,
    "retries": {"max_attempts": None},
    "host": "write endpoint: tcp://HOST:PORT instead",
}


def test_an_unknown_key_names_the_file_the_key_and_the_closest_known_key(tmp_path: Path) -> None:
    path = write(tmp_path, "name: orders\ninterfaces: {broker: {endpoint: 'tcp://a:1', windw: 5}}\n")
    config = Config(path, environ={})

    [problem] = config.unknown_keys("interfaces.broker", KNOWN)

    assert (
        str(problem) == f"Config key 'interfaces.broker.windw' in {path}: unknown key; did you mean 'window'?"
    )
    assert (problem.key, problem.source) == ("interfaces.broker.windw", str(path))


def test_every_unknown_key_of_a_section_and_its_subsections_is_listed_in_file_order() -> None:
    config = Config(
        minimal(interfaces={"broker": {"zzz": 1, "retries": {"max_attempt": 3}, "host": "a", "window": 1}}),
        environ={},
    )

    assert [str(problem) for problem in config.unknown_keys("interfaces.broker", KNOWN)] == [
        "Config key 'interfaces.broker.zzz' in <dict>: unknown key; interfaces.broker has endpoint, retries, window",
        "Config key 'interfaces.broker.retries.max_attempt' in <dict>: unknown key; did you mean 'max_attempts'?",
        "Config key 'interfaces.broker.host' in <dict>: not read by minos.networks: write endpoint: tcp://HOST:PORT instead",
    ]
    with pytest.raises(ConfigError, match=r"interfaces\.broker\.zzz"):
        config.check_keys("interfaces.broker", KNOWN)


def test_an_absent_section_or_one_that_is_not_a_mapping_has_no_unknown_key() -> None:
    config = Config(minimal(interfaces={"http": {}}), environ={})

    assert config.unknown_keys("interfaces.broker", KNOWN) == []
    assert config.unknown_keys("name", KNOWN) == []


def test_an_unknown_key_set_by_a_variable_names_the_variable() -> None:
    config = Config(minimal(), environ={"MINOS_INTERFACES__BROKER__DURABEL__PATH": "x.sqlite"})

    [problem] = config.unknown_keys("interfaces.broker", {"durable": {"path": None}})

    assert str(problem) == (
        "Config key 'interfaces.broker.durabel' in <dict> (set by environment variable "
        "MINOS_INTERFACES__BROKER__DURABEL__PATH): unknown key; did you mean 'durable'?"
    )


def test_as_config_refuses_a_top_level_key_close_to_a_known_one() -> None:
    with pytest.raises(ConfigError) as caught:
        minos.common.as_config(minimal(interfaecs={"http": {"port": 0}}))

    assert str(caught.value) == "Config key 'interfaecs' in <dict>: unknown key; did you mean 'interfaces'?"


def test_an_unknown_interface_is_refused_naming_the_closest_one() -> None:
    config = Config(minimal(interfaces={"htpp": {}}), environ={})

    assert [str(problem) for problem in config.unknown_keys("", minos.common.TOP_LEVEL_KEYS)] == [
        "Config key 'interfaces.htpp' in <dict>: unknown key; did you mean 'http'?"
    ]


def test_a_top_level_section_far_from_every_known_key_is_the_service_s_own_and_named_in_the_notes() -> None:
    config = minos.common.as_config(minimal(billing={"currency": "EUR"}, databases={"default": {}}))

    assert config.get_str("billing.currency") == "EUR"
    assert config.unknown_keys("", minos.common.TOP_LEVEL_KEYS) == []
    assert (
        config.notes[-1] == "not read by minos.networks (the service's own sections, for Config.get): billing"
    )


def test_a_top_level_key_only_a_variable_adds_is_named_in_the_notes_not_refused() -> None:
    config = Config(minimal(), environ={"MINOS_DISCOVERY_SERVICE_URL": "http://elsewhere"})

    assert config.unknown_keys("", minos.common.TOP_LEVEL_KEYS) == []
    assert config.notes == (
        "discovery_service_url: not read by minos.networks (set by environment variable MINOS_DISCOVERY_SERVICE_URL)",
    )


def test_without_copies_the_config_without_the_keys_given() -> None:
    config = Config(minimal(interfaces={"broker": {"windw": 5, "window": 1}}, nmae="x"), environ={})

    pruned = config.without(["interfaces.broker.windw", "nmae", "not.there"])

    assert pruned.get("interfaces.broker") == {"window": 1}
    assert pruned.top_level_keys() == ["name", "interfaces"]
    assert config.get("interfaces.broker") == {"windw": 5, "window": 1}
    assert pruned.source == config.source
