"""CURVE on tcp endpoints: allow-listed client keys deliver, every other handshake is refused and counted."""

import shutil
import struct
import subprocess
import sys
import uuid

import pytest
import zmq
import zmq.asyncio

from minos.common import Config
from minos.networks.brokers.config import connection_factory
from minos.networks.transports import (
    BrokerBindError,
    BrokerServer,
    BrokerUnavailableError,
    CurveClient,
    CurveServer,
    CurveSettings,
    KeyFileError,
    create_keys,
    load_allowed_clients,
    load_public,
    load_secret,
)
from minos.networks.transports.wire import RECORD_HEAD

TIMEOUT = 4.0
BAD_CLIENT_TIMEOUT = 0.5  # seconds a refused client waits for the broker's answer before giving up


@pytest.fixture
def keys(tmp_path):
    """Key pairs: the broker's, an allowed client's, a stranger's; the allow list holds only the client's."""
    folder = tmp_path / "keys"
    pairs = {name: load_secret(create_keys(folder, name)[1]) for name in ("broker", "client", "stranger")}
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(folder / "client.key", allowed / "client.key")
    return {
        **pairs,
        "folder": folder,
        "allowed": allowed,
        "server": CurveServer(pairs["broker"], load_allowed_clients(allowed)),
    }


async def test_a_client_with_an_allowed_key_publishes_and_receives_over_curve(
    make_inbox, broker_threads, keys, connect
):
    broker = broker_threads("tcp://127.0.0.1:0", curve=keys["server"])
    client = CurveClient(keys["client"], keys["broker"].public)
    inbox = make_inbox()
    await (await connect(broker.endpoint, inbox, curve=client)).subscribe("orders", ["order.created"])
    publisher = await connect(broker.endpoint, curve=client)
    await publisher.publish("order.created", b"over curve", 0)
    await inbox.arrived(1)
    assert inbox.bodies == [b"over curve"]
    assert broker.server.stats.refused_handshakes == 0


BAD_CLIENTS = {
    "an unknown client key": lambda keys: CurveClient(keys["stranger"], keys["broker"].public),
    "no key at all": lambda keys: None,
    "a wrong server key": lambda keys: CurveClient(keys["client"], keys["stranger"].public),
}


REFUSED_MESSAGES = {
    "an unknown client key": lambda endpoint, keys: (
        f"the broker at {endpoint!r} refused this client's CURVE public key {keys['stranger'].public.decode()!r} "
        "(ZAP status 400); add the client's .key file to the broker's allowed clients (curve.allowed_clients, "
        f"or --curve-allowed-clients) (waited {BAD_CLIENT_TIMEOUT} s)"
    ),
    "no key at all": lambda endpoint, keys: (
        f"the broker at {endpoint!r} requires CURVE and this client has no keys; set "
        "interfaces.broker.curve.client_secret_key and server_public_key (minos-networks keygen) "
        f"(waited {BAD_CLIENT_TIMEOUT} s)"
    ),
    "a wrong server key": lambda endpoint, keys: (
        f"the CURVE handshake with the broker at {endpoint!r} failed: check that "
        f"{keys['stranger'].public.decode()!r} (interfaces.broker.curve.server_public_key) is the broker's "
        f"public key (waited {BAD_CLIENT_TIMEOUT} s)"
    ),
}


@pytest.mark.parametrize("case", list(BAD_CLIENTS))
async def test_a_client_failing_the_curve_handshake_delivers_nothing_and_is_counted(
    make_inbox, broker_threads, keys, connect, zmq_context, case
):
    broker = broker_threads("tcp://127.0.0.1:0", curve=keys["server"])
    allowed = CurveClient(keys["client"], keys["broker"].public)
    inbox = make_inbox()
    await (await connect(broker.endpoint, inbox, curve=allowed)).subscribe("orders", ["order.created"])
    bad = BAD_CLIENTS[case](keys)
    # A raw DEALER sends its HELLO and a PUB at once, without waiting for any answer ...
    raw = zmq_context.socket(zmq.DEALER)
    try:
        raw.setsockopt(zmq.LINGER, 0)
        if bad is not None:
            raw.curve_serverkey, raw.curve_publickey, raw.curve_secretkey = (
                bad.server_key,
                bad.keys.public,
                bad.keys.secret,
            )
        raw.connect(broker.endpoint)
        raw.send_multipart([b"HELLO", struct.pack(">H", 1)])
        raw.send_multipart([b"PUB", RECORD_HEAD.pack(1, 0, 13, 9) + b"order.createdsmuggled"])
        # ... and a ZmqConnection gives up after its connect timeout, with a hint at the keys.
        with pytest.raises(BrokerUnavailableError) as refused:
            await connect(broker.endpoint, curve=bad, connect_timeout=BAD_CLIENT_TIMEOUT)
        assert str(refused.value) == REFUSED_MESSAGES[case](broker.endpoint, keys)
        assert broker.server.stats.refused_handshakes > 0  # the fault really happened
        # The allowed control message arrives, and it alone: the broken handshakes delivered nothing.
        await (await connect(broker.endpoint, curve=allowed)).publish("order.created", b"control", 0)
        await inbox.arrived(1)
        assert inbox.bodies == [b"control"]
        assert broker.server.stats.published == 1
    finally:
        raw.close(linger=0)


async def test_an_inproc_endpoint_stays_plain_next_to_a_curve_tcp_endpoint(
    make_inbox, broker_threads, keys, connect
):
    name = f"inproc://minos-test-{uuid.uuid4().hex}"
    broker = broker_threads([name, "tcp://127.0.0.1:0"], curve=keys["server"])
    inbox = make_inbox()
    curve = CurveClient(keys["client"], keys["broker"].public)
    await (await connect(name, inbox, curve=curve)).subscribe("orders", ["order.created"])  # ignored
    await (await connect(name)).publish("order.created", b"in process", 0)
    await inbox.arrived(1)
    assert inbox.bodies == [b"in process"]
    with pytest.raises(BrokerUnavailableError):  # while tcp still demands CURVE
        await connect(broker.endpoint, connect_timeout=BAD_CLIENT_TIMEOUT)


async def test_a_second_curve_broker_on_the_same_context_is_refused_with_a_clear_error(
    broker_threads, zmq_context, keys
):
    broker_threads("tcp://127.0.0.1:0", curve=keys["server"])
    second = BrokerServer("tcp://127.0.0.1:0", context=zmq_context, curve=keys["server"])
    with pytest.raises(BrokerBindError, match="context of its own"):
        await second.run()


def test_a_secret_key_file_readable_by_others_is_refused_at_start_up(keys, tmp_path):
    secret = keys["folder"] / "broker.key_secret"
    secret.chmod(0o644)
    with pytest.raises(KeyFileError) as refused:
        load_secret(secret)
    assert "0o644" in str(refused.value)
    assert f"chmod 600 {secret}" in str(refused.value)
    with pytest.raises(KeyFileError, match="chmod 600"):
        CurveSettings(server_secret_key=secret, allowed_clients=keys["allowed"]).server()
    # The broker command refuses it before binding anything.
    result = subprocess.run(
        [
            *(sys.executable, "-m", "minos.networks", "broker", "--bind", "tcp://127.0.0.1:0"),
            *("--curve-secret-key", str(secret), "--curve-allowed-clients", str(keys["allowed"])),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "chmod 600" in result.stderr
    # A service's client keys are checked when its connections are configured, at start-up too.
    client_secret = keys["folder"] / "client.key_secret"
    client_secret.chmod(0o640)
    curve = {"client_secret_key": str(client_secret), "server_public_key": str(keys["folder"] / "broker.key")}
    config = Config(
        {
            "name": "orders",
            "interfaces": {"broker": {"endpoint": "tcp://127.0.0.1:1", "curve": curve}},
        }
    )
    with pytest.raises(KeyFileError, match="0o640"):
        connection_factory(config)
    client_secret.chmod(0o600)
    connection = connection_factory(config)()
    assert connection.curve == CurveClient(keys["client"], keys["broker"].public)


def test_other_bad_key_files_are_refused_with_what_to_do(keys, tmp_path):
    with pytest.raises(KeyFileError, match="keygen"):
        load_secret(tmp_path / "missing.key_secret")
    with pytest.raises(KeyFileError, match="no secret key"):
        load_secret(keys["folder"] / "client.key")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeyFileError, match="holds no"):
        load_allowed_clients(tmp_path / "empty")
    with pytest.raises(KeyFileError, match="allowed_clients"):
        CurveSettings(server_secret_key=keys["folder"] / "broker.key_secret").server()
    assert load_public(keys["broker"].public.decode()) == keys["broker"].public


def test_keygen_writes_a_pair_with_a_private_secret_file_and_prints_the_public_key(tmp_path):
    folder = tmp_path / "new-keys"
    command = [sys.executable, "-m", "minos.networks", "keygen", str(folder), "orders"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert (folder / "orders.key_secret").stat().st_mode & 0o777 == 0o600
    pair = load_secret(folder / "orders.key_secret")
    assert result.stdout.strip() == pair.public.decode() == load_public(folder / "orders.key").decode()
    again = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert again.returncode == 1
    assert "exists already" in again.stderr
    assert load_secret(folder / "orders.key_secret") == pair  # not overwritten
    usage = subprocess.run(command[:-1], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2
