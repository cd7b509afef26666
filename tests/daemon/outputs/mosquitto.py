"""A real Mosquitto broker and a real paho subscriber, for the MQTT bridge's tests.

`Broker` runs Debian's ``/usr/sbin/mosquitto`` on a free 127.0.0.1 port with a config file of
its own and can stop, kill, freeze and restart it on the same port; `Subscriber` is a paho
client that records what it receives and subscribes again after every reconnect; `tls_files`
makes a private CA and a server certificate for 127.0.0.1; `password_file` runs
``mosquitto_passwd``.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectd.daemon.tools.loopback import free_port

MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")
START_TIMEOUT_S = 10.0


def missing() -> str | None:
    """Why the broker tests cannot run here (None: they can)."""
    if not MOSQUITTO.is_file():
        return f"{MOSQUITTO} is missing: apt-get install mosquitto"
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        return "paho-mqtt is missing: pip install 'defectd[mqtt]'"
    return None


class Broker:
    """Mosquitto on 127.0.0.1:`port` (a free one by default), configured in `workdir`.

    `persistent`: sessions, subscriptions and queued messages survive a restart (saved at a
    stop, and every second, so a SIGKILL a second after a change loses nothing either);
    `anonymous`: clients without a username are let in; `extra`: more config lines (for the
    listener: TLS files, a password file).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        persistent: bool = False,
        anonymous: bool = True,
        extra: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", *extra]
        lines.append(f"allow_anonymous {'true' if anonymous else 'false'}")
        if persistent:
            lines += [
                "persistence true",
                f"persistence_location {workdir}/",
                "autosave_interval 1",
                "autosave_on_changes true",  # every change saved at once: a SIGKILL loses none
                "max_queued_messages 100000",
            ]
        else:
            lines.append("persistence false")
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to `mosquitto`, who cannot read tmp files
        self.config = workdir / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def start(self) -> None:
        """Start it and wait until its port takes connections."""
        if self._process is not None:
            raise RuntimeError("the broker runs already")
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [str(MOSQUITTO), "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log.read_text()}")

    def stop(self) -> None:
        """SIGTERM: it disconnects its clients (and saves its state when persistent)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL (also of a frozen broker): its clients' sockets just break."""
        self._end(signal.SIGKILL)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing is read or acknowledged."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, how: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(how)
        process.wait(10)


@dataclass(frozen=True)
class Received:
    """One message as the subscriber got it."""

    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A paho client on the broker at 127.0.0.1:`port`, subscribed to `topics` at QoS 1.

    `client_id` with `persistent`: a session the broker keeps while the subscriber is away
    (clean_session false), so nothing published meanwhile is lost to it. It reconnects every
    second and subscribes again each time.
    """

    def __init__(
        self,
        port: int,
        topics: Sequence[str] = ("#",),
        *,
        client_id: str = "",
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.port = port
        self.topics = tuple(topics)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._subscribed = threading.Event()

    def __enter__(self) -> Subscriber:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout_s: float = 5.0) -> None:
        """Connect and wait for the broker to confirm the subscriptions."""
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            raise AssertionError(f"the subscriber was not subscribed after {timeout_s} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def received(self, prefix: str = "") -> list[Received]:
        """Every message so far on a topic starting with `prefix`, in arrival order."""
        with self._lock:
            return [m for m in self._received if m.topic.startswith(prefix)]

    def until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait for `done`; AssertionError naming `what` and what came instead."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.02)
        topics = [m.topic for m in self.received()][-20:]
        raise AssertionError(f"no {what} after {timeout_s} s; last topics received: {topics}")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            self._received.append(Received(message.topic, message.payload, message.retain))


def retained(port: int, topic: str, timeout_s: float = 3.0, **options: Any) -> Received:
    """What a new subscriber to `topic` gets at once: the retained message."""
    with Subscriber(port, (topic,), **options) as late:
        late.until(lambda: bool(late.received()), timeout_s, f"retained message on {topic}")
        return late.received()[0]


def password_file(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file at `path` for `users` (name → password)."""
    path.write_text("")
    for user, password in users.items():
        subprocess.run([str(MOSQUITTO_PASSWD), "-b", str(path), user, password], check=True)
    return path


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the private CA's certificate: what the clients trust
    certificate: Path  # the broker's, for 127.0.0.1 and localhost, signed by the CA
    key: Path


def tls_files(folder: Path) -> TlsFiles:
    """A throwaway CA and a broker certificate it signed (EC P-256, valid for a day)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def signed(builder: x509.CertificateBuilder, key: Any) -> x509.Certificate:
        valid = builder.not_valid_before(now - datetime.timedelta(minutes=5))
        valid = valid.not_valid_after(now + datetime.timedelta(days=1))
        return valid.serial_number(x509.random_serial_number()).sign(key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = signed(
        x509.CertificateBuilder()
        .subject_name(name("defectd test CA"))
        .issuer_name(name("defectd test CA"))
        .public_key(ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True),
        ca_key,
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alternative = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    certificate = signed(
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .add_extension(alternative, critical=False),
        ca_key,
    )
    folder.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(folder / "ca.pem", folder / "broker.pem", folder / "broker.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
