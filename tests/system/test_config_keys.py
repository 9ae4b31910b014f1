"""Unknown keys through the Python API: each ``from_config`` refuses them, and ``check_config`` lists them all."""

import logging

import pytest

from minos.common import Config, ConfigError
from minos.networks import (
    BrokerClient,
    BrokerPort,
    BrokerPublisher,
    BrokerSubscriber,
    DiscoveryConnector,
    HttpPort,
    OpenAPIService,
    PeriodicPort,
)
from minos.networks.system import ServiceRunner, check_config, log_settings

DURABEL = "Config key 'interfaces.broker.durabel' in <dict>: unknown key; did you mean 'durable'?"


def config_with(**sections):
    return Config({"name": "keys", **sections}, environ={})


def durabel():
    return config_with(
        interfaces={"broker": {"endpoint": "inproc://keys", "durabel": {"path": "keys.sqlite"}}}
    )


@pytest.mark.parametrize(
    "build",
    [
        BrokerPort.from_config,
        BrokerPublisher.from_config,
        lambda config: BrokerSubscriber.from_config(config, topics=["keys"]),
        BrokerClient.from_config,
        ServiceRunner.from_config,
    ],
)
def test_a_misspelt_durable_section_is_refused_by_every_from_config_reading_the_broker(build):
    with pytest.raises(ConfigError) as caught:
        build(durabel())

    assert str(caught.value) == DURABEL
    assert caught.value.key == "interfaces.broker.durabel"


@pytest.mark.parametrize(
    ("sections", "build", "message"),
    [
        (
            {"interfaces": {"http": {"port": 0, "shutdown_timout": 1}}},
            HttpPort.from_config,
            "Config key 'interfaces.http.shutdown_timout' in <dict>: unknown key; did you mean 'shutdown_timeout'?",
        ),
        (
            {"interfaces": {"periodic": {"stop_timeuot": 1}}},
            PeriodicPort.from_config,
            "Config key 'interfaces.periodic.stop_timeuot' in <dict>: unknown key; did you mean 'stop_timeout'?",
        ),
        (
            {"discovery": {"client": "memory", "hots": "localhost"}},
            DiscoveryConnector.from_config,
            "Config key 'discovery.hots' in <dict>: unknown key; did you mean 'host'?",
        ),
        (
            {"logging": {"levle": "INFO"}},
            log_settings,
            "Config key 'logging.levle' in <dict>: unknown key; did you mean 'level'?",
        ),
        (
            {"spec": {"verison": "2.0.0"}},
            lambda config: OpenAPIService(config).spec,
            "Config key 'spec.verison' in <dict>: unknown key; did you mean 'version'?",
        ),
        (
            {"nmae": "keys"},
            PeriodicPort.from_config,
            "Config key 'nmae' in <dict>: unknown key; did you mean 'name'?",
        ),
    ],
)
def test_each_section_s_reader_refuses_an_unknown_key_naming_the_closest_one(sections, build, message):
    with pytest.raises(ConfigError) as caught:
        build(config_with(**sections))

    assert str(caught.value) == message


def test_a_discovery_client_s_own_keys_are_known_when_it_lists_them():
    from minos.networks import InMemoryDiscoveryClient

    class TokenClient(InMemoryDiscoveryClient):
        config_keys = ("host", "port", "token")

    config = config_with(discovery={"client": TokenClient, "token": "secret", "attempts": 3})

    with pytest.raises(ConfigError, match=r"'discovery\.attempts' in <dict>: unknown key; discovery has "):
        DiscoveryConnector.from_config(config)
    assert isinstance(
        DiscoveryConnector.from_config(config.without(["discovery.attempts"])).client, TokenClient
    )


def test_check_config_lists_every_unknown_key_then_the_problems_of_the_values():
    config = config_with(
        nmae="keys",
        interfaces={"broker": {"durabel": {}, "window": 0}, "http": {"port": "eighty", "hots": "a"}},
        logging={"fromat": "json"},
    )

    problems = check_config(config)

    assert [problem.key for problem in problems] == [
        "nmae",
        "interfaces.broker.durabel",
        "interfaces.http.hots",
        "logging.fromat",
        "interfaces.broker",
        "interfaces.http.port",
    ]
    with pytest.raises(ConfigError) as caught:  # the first; the others are logged
        ServiceRunner.from_config(config)
    assert str(caught.value) == str(problems[0])


def test_check_config_logs_the_notes_once_though_it_checks_a_copy(caplog):
    config = config_with(billing={"currency": "EUR"})

    with caplog.at_level(logging.WARNING, logger="minos.common.config"):
        assert check_config(config) == []
        PeriodicPort.from_config(config)

    assert [record.getMessage() for record in caplog.records] == [
        "<dict>: not read by minos.networks (the service's own sections, for Config.get): billing"
    ]
