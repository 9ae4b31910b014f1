"""``minos-networks publish``: one message sent through the broker a configuration names, its reply printed."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace

from minos.common import Config, ConfigError

from ..actors import run_main
from ..brokers import BrokerClient, BrokerPublisher, BrokerSettings, broker_settings
from ..protocol import BrokerMessageV1, BrokerMessageV1Payload
from ..system.runner import unknown_keys
from ..transports import BrokerUnavailableError
from .config_file import load_config
from .exits import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, describe_error, print_problems
from .options import Commands, json_content, positive

__all__ = ["add_parser", "publish_command"]


def add_parser(commands: Commands) -> None:
    """Add ``publish CONFIG.yml TOPIC JSON [--wait-reply] [--timeout SECONDS]``."""
    publish = commands.add_parser(
        "publish",
        help="send one message through the broker a configuration file names",
        description="Send one message (its content parsed from JSON) to TOPIC through a BrokerClient built "
        'from CONFIG.yml. With --wait-reply, print the reply as JSON {"status": ..., "content": ...}. '
        "Exit codes: 0 sent (or a 2xx reply), 1 failure, timeout or a reply with another status, 2 usage, "
        "3 configuration error.",
    )
    publish.add_argument("config", metavar="CONFIG.yml", help="the configuration naming the broker")
    publish.add_argument("topic", metavar="TOPIC", help="where to send the message")
    publish.add_argument("content", metavar="JSON", type=json_content, help="the content, e.g. '{\"id\": 1}'")
    publish.add_argument("--wait-reply", action="store_true", help="wait for the reply and print it")
    publish.add_argument(
        "--timeout", type=positive, default=10.0, help="seconds for the whole exchange (default 10)"
    )
    publish.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    return publish_command(
        args.config, args.topic, args.content, wait_reply=args.wait_reply, timeout=args.timeout
    )


def publish_command(path: str, topic: str, content: object, *, wait_reply: bool, timeout: float) -> int:
    """Send one message through the broker ``path`` names; with ``wait_reply``, print the reply as JSON.

    Returns:
        0 sent (or replied with a 2xx status), 1 an error, a timeout or a non-2xx reply, 3 a wrong config.
    """
    prefix = "minos-networks publish"
    config = load_config(path, prefix, check=unknown_keys)
    if config is None:
        return EXIT_CONFIG
    try:
        settings = broker_settings(config)
    except ConfigError as error:
        print_problems(prefix, path, [error])
        return EXIT_CONFIG
    endpoint = settings.endpoint
    if settings.transport == "zmq" and endpoint.startswith("inproc://"):
        # The service's own process reaches its embedded broker over inproc; another one needs a bind.
        reachable = [bind for bind in settings.bind if not bind.startswith("inproc://")]
        if not reachable:
            print(
                f"{prefix}: {path}: interfaces.broker.endpoint: {endpoint!r} is reachable from its own process "
                "only; give the embedded broker a `bind` endpoint (ipc:// or tcp://), or name the broker "
                "process's endpoint",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        endpoint = reachable[0]
        # What reading the file with interfaces.broker.endpoint and embedded overridden would give.
        settings = replace(settings, endpoint=endpoint, embedded=False)
    elif settings.transport != "zmq":
        print(
            f"{prefix}: {path}: interfaces.broker.transport: {settings.transport!r} is in-process only",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        return run_main(
            _publish(config, settings, topic, content, wait_reply=wait_reply, timeout=timeout, prefix=prefix)
        )
    except BrokenPipeError:
        raise  # the reader of the reply went away: main() ends quietly
    except Exception as error:
        print(f"{prefix}: {describe_error(error)} (broker {endpoint})", file=sys.stderr)
        return EXIT_FAILURE


async def _publish(
    config: Config,
    settings: BrokerSettings,
    topic: str,
    content: object,
    *,
    wait_reply: bool,
    timeout: float,
    prefix: str,
) -> int:
    message = BrokerMessageV1(topic, BrokerMessageV1Payload(content))
    sender: BrokerClient | BrokerPublisher
    sender = (
        BrokerClient.from_config(config, settings=settings)
        if wait_reply
        else BrokerPublisher.from_config(config, durable=False, settings=settings)
    )
    try:
        # Connecting is bounded by interfaces.broker.connect_timeout, and fails with BrokerUnavailableError
        # naming the endpoint; only then does --timeout count, for the broker's acceptance and the reply.
        try:
            await sender.start()
        except BrokerUnavailableError as error:
            print(f"{prefix}: {error}", file=sys.stderr)
            return EXIT_FAILURE
        async with asyncio.timeout(timeout):
            await sender.send(message)
            if not isinstance(sender, BrokerClient):
                print(f"{prefix}: sent {message.identifier} to {topic!r}", file=sys.stderr)
                return EXIT_OK
            reply = await sender.receive()
    except TimeoutError:
        what = "a reply" if wait_reply else "the broker to accept the message"
        print(f"{prefix}: no answer within {timeout} s: waited for {what} on {topic!r}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await sender.stop(2.0)
    status = int(reply.status)
    print(json.dumps({"status": status, "content": reply.content}, default=str), flush=True)
    return EXIT_OK if 200 <= status < 300 else EXIT_FAILURE
