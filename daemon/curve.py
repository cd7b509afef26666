"""ZeroMQ CURVE for the ingest and event sockets (docs/security.md).

Keys are pyzmq certificate files, as `zmq.auth` and czmq's zcert write and read them:
``NAME.key`` holds the public key, ``NAME.key_secret`` the public and the secret key. An
allow-list is a directory of ``*.key`` files, one per client allowed in.

A socket the daemon binds (PULL for pushing cameras, the event PUB) is a CURVE server; the
process that owns it runs a ZAP handler (`start_authenticator`) that lets in only the listed
client keys, and a `RejectionWatch` that counts and logs the handshakes refused. A SUB socket
the daemon connects to a camera's PUB is a CURVE client: the camera is the server.

Secret keys live in memory as bytes in `KeyPair`, whose repr hides them; nothing here logs a
key other than a client's public one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from defectd.daemon.ratelimit import RateLimitedLog
from defectd.engines.errors import UserError

log = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644
_WATCH_POLL_MS = 100


class CurveKeyError(UserError, ValueError):
    """A key file or allow-list directory that cannot be used; the message names the file."""


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair in z85; the secret never appears in repr or str."""

    public: bytes
    secret: bytes = field(repr=False)


def write_key_pair(directory: Path, name: str, force: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public, 0644) and ``NAME.key_secret`` (0600) into `directory`.

    Refuses (FileExistsError) to replace either file unless `force`. The files are made in a
    private temporary folder and moved into place, so the secret is never readable by others,
    not even for a moment.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"key name {name!r}: give a plain file name such as 'camera1'")
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    existing = [str(path) for path in (public, secret) if path.exists()]
    if existing and not force:
        raise FileExistsError(
            f"{', '.join(existing)} already exist(s): pass --force to replace the key pair "
            "(clients holding the old public key are then locked out)"
        )
    with tempfile.TemporaryDirectory(dir=directory, prefix=".keygen-") as scratch:
        made_public, made_secret = zmq.auth.create_certificates(scratch, name)
        os.chmod(made_secret, SECRET_MODE)
        os.chmod(made_public, PUBLIC_MODE)
        os.replace(made_secret, secret)
        os.replace(made_public, public)
    return public, secret


def _load(path: Path) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(path)
    except PermissionError:
        raise CurveKeyError(f"{path}: not readable by this user") from None
    except OSError as exc:
        reason = "no such file" if not path.exists() else (exc.strerror or str(exc))
        raise CurveKeyError(f"{path}: {reason}") from None
    except ValueError:
        raise CurveKeyError(f"{path}: no public-key line: not a CURVE certificate") from None


def load_key_pair(path: Path) -> KeyPair:
    """The key pair of a ``.key_secret`` certificate (`CurveKeyError` naming the problem)."""
    public, secret = _load(path)
    if not secret:
        raise CurveKeyError(
            f"{path}: holds no secret key: name the {SECRET_SUFFIX} file, not the "
            f"{PUBLIC_SUFFIX} one"
        )
    return KeyPair(public, secret)


def load_public_key(path: Path) -> bytes:
    """The public key of a ``.key`` (or ``.key_secret``) certificate."""
    return _load(path)[0]


def load_allow_list(directory: Path) -> frozenset[bytes]:
    """The public keys of every ``*.key`` certificate in `directory`."""
    if not directory.is_dir():
        what = "not a directory" if directory.exists() else "no such directory"
        raise CurveKeyError(f"{directory}: {what}")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise CurveKeyError(f"{directory}: not readable by this user")
    return frozenset(load_public_key(path) for path in sorted(directory.glob(f"*{PUBLIC_SUFFIX}")))


def loose_permissions(path: Path) -> str | None:
    """Who besides the owner can read the secret key file `path` ("group", "others",
    "group and others"), or None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    bits = (("group", stat.S_IRGRP), ("others", stat.S_IROTH))
    readers = [who for who, bit in bits if mode & bit]
    return " and ".join(readers) or None


# --- sockets -----------------------------------------------------------------------------------


def make_server(sock: zmq.Socket[bytes], keys: KeyPair) -> None:
    """Make `sock` a CURVE server (call before bind)."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True


def make_client(sock: zmq.Socket[bytes], keys: KeyPair, server_public: bytes) -> None:
    """Make `sock` a CURVE client of the server whose public key is `server_public` (call
    before connect)."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = server_public


def start_authenticator(
    context: zmq.Context[zmq.Socket[bytes]], clients_dir: Path
) -> ThreadAuthenticator:
    """The ZAP handler of `context`: only clients with a certificate in `clients_dir` pass.

    Start it before binding a CURVE server socket: without a ZAP handler libzmq lets every
    client with a well-formed key in.
    """
    load_allow_list(clients_dir)  # a clear error here rather than pyzmq's logged one
    # pyzmq's authenticator logs each client key it sees at debug; keep that out of the
    # daemon's debug output, the watch logs refusals.
    quiet = logging.getLogger("defectd.daemon.curve.zap")
    quiet.setLevel(logging.WARNING)
    auth = ThreadAuthenticator(context, log=quiet)
    auth.start()
    auth.configure_curve(domain="*", location=str(clients_dir))
    return auth


class RejectionWatch:
    """Counts and logs the handshakes refused on CURVE sockets, from socket monitor events.

    A ZAP denial (key not in the allow-list) is ``EVENT_HANDSHAKE_FAILED_AUTH``; a client
    without CURVE, or one that holds the wrong server key, fails with a protocol error.
    `on_reject(socket, reason)` is called from the watch's thread, once per refused
    connection attempt (a refused client retries, so the count grows while it does).
    """

    EVENTS = (
        zmq.EVENT_HANDSHAKE_FAILED_AUTH
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    )

    def __init__(self, on_reject: Callable[[str, str], None] | None = None) -> None:
        self._on_reject = on_reject
        self._watched: list[tuple[zmq.Socket[bytes], zmq.Socket[bytes], str, bool]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._log = RateLimitedLog(log, period_s=10.0)

    def watch(self, sock: zmq.Socket[bytes], name: str, server: bool = True) -> None:
        """Watch `sock` (call before its bind/connect; before or after `start`: a socket a
        reload opens joins the running watch). `server` False: the daemon is the client, so
        a failure is logged (the peer refused us), not counted."""
        monitor = sock.get_monitor_socket(self.EVENTS)
        with self._lock:  # the watch thread takes it over: the lock orders the hand-over
            self._watched.append((sock, monitor, name, server))

    def start(self) -> RejectionWatch:
        self._thread = threading.Thread(target=self._run, name="curve-watch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        poller = zmq.Poller()
        by_monitor: dict[zmq.Socket[bytes], tuple[str, bool]] = {}
        while not self._stop.is_set():
            with self._lock:
                for _, monitor, name, server in self._watched[len(by_monitor) :]:
                    poller.register(monitor, zmq.POLLIN)
                    by_monitor[monitor] = (name, server)
            if not by_monitor:
                self._stop.wait(_WATCH_POLL_MS / 1000)
                continue
            for monitor, _ in poller.poll(_WATCH_POLL_MS):
                name, server = by_monitor[monitor]
                try:
                    event = recv_monitor_message(monitor, zmq.NOBLOCK)
                except zmq.Again:
                    continue
                if event["event"] & self.EVENTS:  # not MONITOR_STOPPED: a socket closed
                    self._seen(name, server, event["event"], event["endpoint"])

    def _seen(self, name: str, server: bool, event: int, endpoint: bytes) -> None:
        reason = "unknown_key" if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH else "bad_handshake"
        where = endpoint.decode(errors="replace")
        if not server:
            self._log.warning(
                f"client:{where}:{reason}",
                "%s %s: the peer refused the daemon's CURVE handshake (%s): is the daemon's "
                "public key in its allow-list, and server_public_key the peer's key?",
                name,
                where,
                reason,
            )
            return
        if self._on_reject is not None:
            self._on_reject(name, reason)
        hint = "key not in the allow-list" if reason == "unknown_key" else "no CURVE or bad key"
        self._log.warning(
            f"{name}:{where}:{reason}", "%s %s: refused a client (%s)", name, where, hint
        )

    def close(self) -> None:
        """Stop watching (before the sockets are closed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for sock, monitor, _, _ in self._watched:
            if not sock.closed:
                with contextlib.suppress(zmq.ZMQError):  # its context is already ending
                    sock.disable_monitor()
            monitor.close(linger=0)
        self._watched.clear()
