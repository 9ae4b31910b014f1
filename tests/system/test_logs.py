"""Structured logs: records about a message carry its identifier, its topic and the service."""

import io
import json
import logging

import pytest

from minos.common import Config, ConfigError
from minos.networks import Request, Response, enroute
from minos.networks.system import (
    JsonFormatter,
    MessageContextFilter,
    TextFormatter,
    check_config,
    configure_logging,
    log_settings,
)
from minos.networks.testing import ServiceHarness

handler_logger = logging.getLogger("tests.ledger")


class LedgerService:
    @enroute.broker.command("ledger.add")
    async def add(self, request: Request) -> Response:
        handler_logger.warning("adding %s", (await request.content())["amount"])
        return Response({"id": str(request.raw.identifier)})

    @enroute.broker.command("ledger.break")
    async def broken(self, request: Request) -> Response:
        raise RuntimeError("the ledger is on fire")


@pytest.fixture
def records():
    """The JSON lines the root logger writes while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MessageContextFilter("ledger"))
    root = logging.getLogger()
    root.addHandler(handler)

    def read():
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    try:
        yield read
    finally:
        root.removeHandler(handler)


async def test_what_a_handler_logs_carries_its_message_identifier_and_topic(records):
    async with ServiceHarness([LedgerService]) as harness:
        reply = await harness.send("ledger.add", {"amount": 42})
    [record] = [record for record in records() if record["logger"] == "tests.ledger"]
    assert record["message"] == "adding 42"
    assert record["level"] == "WARNING"
    assert record["message_id"] == reply.content["id"] == str(reply.identifier)
    assert record["topic"] == "ledger.add"
    assert record["service"] == "ledger"
    assert record["time"].endswith("+00:00")


async def test_a_dead_letter_is_logged_with_the_message_it_is_about(records):
    async with ServiceHarness([LedgerService]) as harness:
        reply = await harness.send("ledger.break", {"amount": 1})
    assert reply.status == 500
    by_logger = {}
    for record in records():
        by_logger.setdefault(record["logger"], []).append(record)
    [failure] = by_logger["minos.networks.enroute.dispatch"]  # logged inside the handler's context
    assert failure["message_id"] == str(reply.identifier)
    assert "RuntimeError: the ledger is on fire" in failure["exception"]
    [dead] = [
        record
        for record in by_logger["minos.networks.brokers.handler"]
        if "dead letters" in record["message"]
    ]
    assert (dead["message_id"], dead["topic"]) == (str(reply.identifier), "ledger.break")


def test_a_record_about_nothing_in_particular_has_null_message_fields():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "plain %s", ("words",), None)
    record.custom = {"k": 1}
    MessageContextFilter("svc").filter(record)
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "plain words"
    assert (data["service"], data["message_id"], data["topic"]) == ("svc", None, None)
    assert data["custom"] == {"k": 1}  # any other extra= field comes along
    assert TextFormatter().format(record).endswith("ERROR x: plain words")


def test_the_text_format_names_the_message_when_there_is_one():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "slow", (), None)
    record.message_id, record.topic = "1234", "ledger.add"
    MessageContextFilter().filter(record)
    assert TextFormatter().format(record).endswith("WARNING x: slow [topic=ledger.add message_id=1234]")


def test_configure_logging_installs_one_root_handler_of_the_chosen_format():
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("info", "json", service="orders", stream=stream)
        logging.getLogger("tests.configure").info("ready")
        assert len(root.handlers) == 1
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    assert json.loads(stream.getvalue())["service"] == "orders"
    with pytest.raises(ValueError, match="unknown log format 'xml'; use one of text, json"):
        configure_logging("INFO", "xml")
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging("LOUD", "text")


def test_the_logging_section_is_checked_with_the_rest_of_the_config():
    assert log_settings(Config({"name": "x"})) == ("WARNING", "text")
    assert log_settings(Config({"name": "x", "logging": {"level": "debug", "format": "json"}})) == (
        "DEBUG",
        "json",
    )
    problems = check_config(Config({"name": "x", "logging": {"format": "xml", "level": "INFO"}}))
    assert [problem.key for problem in problems] == ["logging.format"]
    assert "must be one of text, json, got 'xml'" in str(problems[0])
    with pytest.raises(ConfigError, match=r"logging\.level"):
        log_settings(Config({"name": "x", "logging": {"level": 3}}))
