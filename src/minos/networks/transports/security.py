"""CURVE security between ZmqConnection and BrokerServer: key files, the broker's ZAP guard, refused handshakes.

What is protected: with CURVE configured, every ``tcp://`` (and ``ipc://``) link between a client and the
broker is encrypted and the broker admits only clients whose public key is in its allow list. ``inproc://``
links never leave the process and stay plain: libzmq runs no handshake on them, so a CURVE broker also
serves its own embedded dispatchers, and a client given CURVE keys for an inproc endpoint ignores them
(and says so in a log line).

Keys are the files pyzmq's ``zmq.auth`` writes and reads (``minos-networks keygen DIR NAME`` makes a pair):
``NAME.key`` holds the public key, ``NAME.key_secret`` both keys. A secret key file that its group or other
users may read is refused.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import zmq
import zmq.auth
from zmq.auth.base import Authenticator
from zmq.utils.monitor import parse_monitor_message

from ..exceptions import MinosNetworkException
from .wire import LogLimiter, readable

__all__ = [
    "CurveClient",
    "CurveGuard",
    "CurveKeys",
    "CurveServer",
    "CurveSettings",
    "HandshakeWatch",
    "KeyFileError",
    "apply_client_keys",
    "create_keys",
    "load_allowed_clients",
    "load_public",
    "load_secret",
]

logger = logging.getLogger(__name__)

_KEY_LENGTH: Final = 40  # a Z85-encoded CURVE key
_REFUSED_EVENTS: Final = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_REASONS: Final = {
    int(
        zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
    ): "the client does not speak CURVE (it has no keys configured)",
    int(zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC): "the client's keys do not match (a wrong server public key?)",
}


class KeyFileError(MinosNetworkException, ValueError):
    """A CURVE key file is missing, unreadable, malformed, or (a secret one) readable by other users."""


@dataclass(frozen=True, slots=True)
class CurveKeys:
    """A CURVE key pair, each key Z85-encoded (40 bytes) as ``zmq.auth`` writes them."""

    public: bytes
    secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class CurveServer:
    """What a broker needs for CURVE: its own key pair and the public keys of the clients it admits."""

    keys: CurveKeys
    allowed_clients: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class CurveClient:
    """What a client needs for CURVE: its own key pair and the broker's public key."""

    keys: CurveKeys
    server_key: bytes


def load_secret(path: str | os.PathLike[str]) -> CurveKeys:
    """Read a key pair from a ``.key_secret`` file, refusing one that other users may read.

    Raises:
        KeyFileError: when the file is missing or unreadable, holds no secret key, or its mode lets
            its group or others read it (the message says to ``chmod 600`` it).
    """
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise KeyFileError(
            f"cannot read a CURVE key pair from {str(path)!r}: {reason}; make one with "
            "`minos-networks keygen DIR NAME` and pass its NAME.key_secret file"
        ) from exc
    if secret is None:
        raise KeyFileError(
            f"{str(path)!r} holds no secret key (is it the public NAME.key file?); pass the NAME.key_secret file"
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"the CURVE secret key file {str(path)!r} has mode {mode:#o}, so its group or other users may "
            f"read it; refusing to use it: run `chmod 600 {path}` (and make a new pair if it may have leaked)"
        )
    return CurveKeys(_checked(public, path), _checked(secret, path))


def load_public(key_or_path: str | os.PathLike[str]) -> bytes:
    """A public key, given as its 40 Z85 characters or as the path of a ``.key`` file.

    Raises:
        KeyFileError: when it is neither a 40-character key nor a readable key file.
    """
    text = os.fspath(key_or_path)
    if len(text) == _KEY_LENGTH and not Path(text).exists():
        return text.encode("ascii", errors="replace")
    try:
        public, _ = zmq.auth.load_certificate(text)
    except (OSError, ValueError) as exc:
        raise KeyFileError(
            f"{text!r} is neither a 40-character Z85 public key nor a readable key file ({exc}); pass the "
            "broker's NAME.key file or the key it holds"
        ) from exc
    return _checked(public, Path(text))


def load_allowed_clients(directory: str | os.PathLike[str]) -> frozenset[bytes]:
    """The public keys of every ``*.key`` file in ``directory``: the clients a broker admits.

    Raises:
        KeyFileError: when ``directory`` is not a directory or holds no key file.
    """
    path = Path(directory)
    if not path.is_dir():
        raise KeyFileError(
            f"the allowed clients directory {str(path)!r} does not exist or is not a directory; create it "
            "and copy each client's NAME.key file (its public key) into it"
        )
    keys = frozenset(zmq.auth.load_certificates(path))
    if not keys:
        raise KeyFileError(
            f"the allowed clients directory {str(path)!r} holds no *.key file, so no client could connect; "
            "copy each client's NAME.key file (its public key) into it"
        )
    return keys


def create_keys(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write a new key pair as ``directory/name.key`` (public) and ``directory/name.key_secret`` (mode 0600).

    Returns:
        The paths of the public and the secret key files.

    Raises:
        FileExistsError: when either file exists already (keys are never overwritten).
        OSError: when the directory cannot be created or written.
    """
    folder = Path(directory)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise FileExistsError(
                f"{str(path)!r} exists already; keys are never overwritten: pick another name or remove it"
            )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The secret file must never exist with a readable mode, not even for a moment: create it under a
    # umask that takes every permission from group and others (the CLI is single-threaded here).
    previous = os.umask(0o077)
    try:
        written_public, written_secret = zmq.auth.create_certificates(folder, name)
    finally:
        os.umask(previous)
    Path(written_secret).chmod(0o600)
    Path(written_public).chmod(0o644)
    return Path(written_public), Path(written_secret)


@dataclass(frozen=True, slots=True)
class CurveSettings:
    """Where the CURVE keys are, as ``interfaces.broker.curve`` says; ``server()`` and ``client()`` load them.

    Attributes:
        server_secret_key: The broker's ``.key_secret`` file (for a broker).
        allowed_clients: A directory of the ``.key`` files of the clients the broker admits (for a broker).
        client_secret_key: This service's ``.key_secret`` file (for a client).
        server_public_key: The broker's public key: its ``.key`` file or its 40 characters (for a client).
    """

    server_secret_key: Path | None = None
    allowed_clients: Path | None = None
    client_secret_key: Path | None = None
    server_public_key: str | None = None

    @property
    def for_broker(self) -> bool:
        """Whether a broker setting is given (then ``server()`` must succeed)."""
        return self.server_secret_key is not None or self.allowed_clients is not None

    def server(self) -> CurveServer:
        """Load what a broker needs.

        Raises:
            KeyFileError: when a setting is missing or a file is refused (see ``load_secret``).
        """
        if self.server_secret_key is None or self.allowed_clients is None:
            raise KeyFileError(
                "a CURVE broker needs both server_secret_key and allowed_clients, got "
                f"{self.server_secret_key!r} and {self.allowed_clients!r}; set both under "
                "interfaces.broker.curve, or neither for a plain broker"
            )
        return CurveServer(load_secret(self.server_secret_key), load_allowed_clients(self.allowed_clients))

    def client(self) -> CurveClient:
        """Load what a client needs.

        Raises:
            KeyFileError: when a setting is missing or a file is refused (see ``load_secret``).
        """
        if self.client_secret_key is None or self.server_public_key is None:
            raise KeyFileError(
                "a CURVE client needs both client_secret_key and server_public_key, got "
                f"{self.client_secret_key!r} and {self.server_public_key!r}; set both under "
                "interfaces.broker.curve to reach a CURVE broker over tcp://"
            )
        return CurveClient(load_secret(self.client_secret_key), load_public(self.server_public_key))


def apply_client_keys(socket: zmq.Socket[Any], client: CurveClient) -> None:
    """Make ``socket`` a CURVE client of the broker whose public key ``client`` holds (before connect)."""
    socket.setsockopt(zmq.CURVE_SERVERKEY, client.server_key)
    socket.setsockopt(zmq.CURVE_PUBLICKEY, client.keys.public)
    socket.setsockopt(zmq.CURVE_SECRETKEY, client.keys.secret)


class _Authenticator(Authenticator):
    """pyzmq's ZAP authenticator, admitting the CURVE keys of an allow list and logging whom it refuses."""

    def __init__(self, context: zmq.Context[Any], allowed: frozenset[bytes]) -> None:
        super().__init__(context, log=logger)
        self._allowed_keys = allowed
        self._address = "?"
        self._log_now = LogLimiter()
        self.configure_curve_callback("*", self)

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        """Answer one ZAP request, remembering the peer's address for the log line of a refusal."""
        self._address = msg[3].decode(errors="replace") if len(msg) > 3 else "?"
        await super().handle_zap_message(msg)

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the client with this public key (Z85) may connect; the ZAP credentials provider hook."""
        if key in self._allowed_keys:
            return True
        if self._log_now():
            logger.warning(
                "refused a CURVE client from %s: its public key %s is not among the allowed clients; if it "
                "should connect, put its NAME.key file in the allowed clients directory and restart the broker "
                "(logged at most once a second)",
                self._address,
                key.decode(errors="replace"),
            )
        return False


class CurveGuard:
    """The broker's half of CURVE, owned by the broker's loop thread like the ROUTER socket it guards.

    ``secure(socket)``, before the socket binds, starts pyzmq's ZAP authenticator on the socket's context
    (one per context: libzmq asks whoever binds ``inproc://zeromq.zap.01``), makes the socket a CURVE
    server, and watches its monitor for refused handshakes: an unknown client key (refused by ZAP), a
    client without CURVE, or one using another server public key (refused by libzmq before ZAP). The
    loop calls ``pump()`` whenever one of ``fds`` is readable, and ``close()`` before closing the socket.

    Args:
        context: The broker socket's context.
        server: The broker's keys and the clients it admits.
    """

    def __init__(self, context: zmq.Context[Any], server: CurveServer) -> None:
        self.refused = 0
        """Handshakes refused so far."""
        self._context = context
        self._server = server
        self._authenticator: _Authenticator | None = None
        self._socket: zmq.Socket[bytes] | None = None
        self._monitor: zmq.Socket[bytes] | None = None
        self._log_now = LogLimiter()

    def secure(self, socket: zmq.Socket[bytes]) -> list[int]:
        """Guard ``socket`` (not bound yet); return the file descriptors to watch for ``pump``.

        Raises:
            zmq.ZMQError: when another ZAP authenticator runs on this context already (``EADDRINUSE``).
        """
        authenticator = self._authenticator = _Authenticator(self._context, self._server.allowed_clients)
        authenticator.start()  # binds the ZAP endpoint: without a handler libzmq would admit every key
        socket.setsockopt(zmq.CURVE_SERVER, 1)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, self._server.keys.public)
        socket.setsockopt(zmq.CURVE_SECRETKEY, self._server.keys.secret)
        self._socket = socket
        monitor: zmq.Socket[bytes] = socket.get_monitor_socket(_REFUSED_EVENTS)
        self._monitor = monitor
        return [authenticator.zap_socket.fileno(), monitor.fileno()]

    async def pump(self) -> None:
        """Answer every queued ZAP request and count every refused handshake the monitor reports."""
        authenticator, monitor = self._authenticator, self._monitor
        if authenticator is not None:
            zap = authenticator.zap_socket
            while readable(zap):
                await authenticator.handle_zap_message(zap.recv_multipart(zmq.NOBLOCK))
        if monitor is not None:
            while readable(monitor):
                self._refused(parse_monitor_message(monitor.recv_multipart(zmq.NOBLOCK)))

    def close(self) -> None:
        """Stop the monitor and the authenticator (idempotent); the guarded socket is closed after it."""
        _stop_monitor(self._socket, self._monitor)
        self._monitor = self._socket = None
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None

    def _refused(self, event: Mapping[str, Any]) -> None:
        self.refused += 1
        if not self._log_now():
            return
        value = int(event.get("value", 0))
        if event.get("event") == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            reason = f"its public key is not allowed (ZAP status {value})"
        else:
            reason = _REASONS.get(value, f"libzmq error {value:#x}")
        logger.warning(
            "refused a CURVE handshake on %s: %s; %d refused so far (logged at most once a second)",
            bytes(event.get("endpoint", b"?")).decode(errors="replace"),
            reason,
            self.refused,
        )


class HandshakeWatch:
    """What a client's socket saw of its handshakes while opening, to say why no broker answered.

    A broker that refuses the client's CURVE handshake looks, from the client, like no broker at all: no
    WELCOME comes. libzmq tells the client's socket monitor more, and this turns it into what to do: the
    broker refused this client's public key (ZAP), the broker requires CURVE and the client has no keys
    (or the other way round), or the keys do not match (a wrong server public key). Owned by the
    connection's loop thread, like the socket it watches; only while opening.
    """

    __slots__ = ("_monitor", "_socket", "failure", "value")

    def __init__(self) -> None:
        self._socket: zmq.Socket[bytes] | None = None
        self._monitor: zmq.Socket[bytes] | None = None
        self.failure: int | None = None
        """The last handshake failure event seen (``zmq.EVENT_HANDSHAKE_FAILED_*``), or None."""
        self.value = 0

    def watch(self, socket: zmq.Socket[bytes]) -> None:
        """Watch ``socket`` (not connected yet) instead of the one watched before."""
        self.stop()
        self._socket, self._monitor = socket, socket.get_monitor_socket(_REFUSED_EVENTS)

    def read(self) -> None:
        """Take in what the monitor has reported so far."""
        monitor = self._monitor
        if monitor is None:
            return
        while readable(monitor):
            event = parse_monitor_message(monitor.recv_multipart(zmq.NOBLOCK))
            self.failure, self.value = int(event["event"]), int(event.get("value", 0))

    def stop(self) -> None:
        """Read what is left, then stop watching (idempotent); call before closing the watched socket."""
        self.read()
        _stop_monitor(self._socket, self._monitor)
        self._monitor = self._socket = None

    def explain(self, endpoint: str, curve: CurveClient | None) -> str | None:
        """Why the handshake with the broker at ``endpoint`` failed, and what to do; None if none failed."""
        self.read()
        if self.failure == zmq.EVENT_HANDSHAKE_FAILED_AUTH and curve is not None:
            return (
                f"the broker at {endpoint!r} refused this client's CURVE public key "
                f"{curve.keys.public.decode()!r} (ZAP status {self.value}); add the client's .key file to the "
                "broker's allowed clients (curve.allowed_clients, or --curve-allowed-clients)"
            )
        if self.failure == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and curve is None:
            return (
                f"the broker at {endpoint!r} requires CURVE and this client has no keys; set "
                "interfaces.broker.curve.client_secret_key and server_public_key (minos-networks keygen)"
            )
        if self.failure == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            return (
                f"the broker at {endpoint!r} does not speak CURVE while this client does; remove "
                "interfaces.broker.curve from this client's config, or give the broker its keys"
            )
        if self.failure is not None and curve is not None:
            return (
                f"the CURVE handshake with the broker at {endpoint!r} failed: check that "
                f"{curve.server_key.decode()!r} (interfaces.broker.curve.server_public_key) is the broker's "
                "public key"
            )
        return None


def _checked(key: bytes | None, path: Path) -> bytes:
    if key is None or len(key) != _KEY_LENGTH:
        raise KeyFileError(
            f"{str(path)!r} holds no valid CURVE key ({_KEY_LENGTH} Z85 characters expected); make a new pair "
            "with `minos-networks keygen DIR NAME`"
        )
    return key


def _stop_monitor(socket: zmq.Socket[Any] | None, monitor: zmq.Socket[Any] | None) -> None:
    """Stop ``socket``'s monitor and close its end (the socket may be gone already, and its monitor with it)."""
    if monitor is None or socket is None:
        return
    try:
        socket.disable_monitor()
    except zmq.ZMQError:
        pass  # the socket is gone already: so is its monitor
    monitor.close(linger=0)
