"""The OPC UA server output: the inspection's state as OPC UA nodes (asyncua, its own thread).

`OpcUaServer` is the `Output` the ``opcua`` stage runs. `handle` only updates
`opcua_nodes.InspectionValues` under a lock and, when nothing was waiting, wakes the server's
thread; that thread runs an asyncio loop with the asyncua server and writes the values that
changed, so OPC UA subscribers get data changes and the stage never waits on a client.

Security is decided once, in `start`, by `load_security`: a loopback endpoint offers
NoSecurity with anonymous clients; any other (or `secure_on_loopback`, for tests) offers only
Basic256Sha256 SignAndEncrypt with the configured certificate and private key, and a client
must present a certificate that `ClientCheck` accepts (one from ``trusted_clients_dir``, or
issued by one there; without the directory, any certificate in its validity period).
The address space is in `opcua_nodes`; docs/integration.md#opc-ua shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from defectd.engines.errors import InvalidSetting, MissingDependency

try:
    from asyncua import ua
    from asyncua.common.utils import ServiceError
    from asyncua.crypto.permission_rules import User, UserRole
    from asyncua.server.server import Server
    from asyncua.server.user_managers import UserManager
    from asyncua.ua.status_codes import StatusCodes
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
except ImportError as error:  # the extra is not installed
    raise MissingDependency(
        f"opcua.enabled needs asyncua, which is not installed: pip install 'defectd[opcua]' "
        f"({error})"
    ) from error

from defectd.daemon.background import Background
from defectd.daemon.config.endpoints import is_loopback, opcua_host
from defectd.daemon.config.schema import OpcUaSettings
from defectd.daemon.outputs.base import OutputStats
from defectd.daemon.outputs.opcua_nodes import (
    NAMESPACE,
    STALE_S,
    InspectionValues,
    Value,
    build_nodes,
)
from defectd.daemon.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # building the standard address space takes seconds on a small CPU
STOP_TIMEOUT_S = 2.0
COALESCE_S = 0.05  # after a write, changes gather this long: OPC UA samples, it does not stream
CERTIFICATE_HELP = "make one with openssl (docs/integration.md#opc-ua-certificates)"
_CERT_SUFFIXES = (".pem", ".der", ".crt", ".cer")


@dataclass(frozen=True)
class Security:
    """What the endpoint offers: NoSecurity with anonymous clients (`plain`), and/or
    Basic256Sha256 SignAndEncrypt with this certificate and private key (DER). `trusted`:
    client certificates (or their issuers) allowed; None: any client certificate."""

    plain: bool
    certificate: bytes | None = None
    private_key: bytes | None = None
    trusted: tuple[x509.Certificate, ...] | None = None

    @property
    def encrypted(self) -> bool:
        return self.certificate is not None and self.private_key is not None


def load_security(settings: OpcUaSettings, application_uri: str, *, secure: bool) -> Security:
    """The endpoint's security from `settings`; `secure`: no NoSecurity endpoint (required
    beyond loopback). `InvalidSetting` naming the key and the fix for a missing, unreadable or
    unfit certificate, key or trusted directory."""
    given = settings.certificate is not None or settings.private_key is not None
    if not secure and not given:
        return Security(plain=True)
    certificate = _load_certificate(_read(settings.certificate, "certificate"), settings)
    key = _load_private_key(_read(settings.private_key, "private_key"), settings)
    if _public(certificate.public_key()) != _public(key.public_key()):
        raise InvalidSetting(
            f"opcua.private_key {settings.private_key} is not the key of opcua.certificate "
            f"{settings.certificate}: give the pair made together ({CERTIFICATE_HELP})"
        )
    _check_uri(certificate, application_uri, settings)
    trusted = None
    if settings.trusted_clients_dir is not None:
        trusted = _load_trusted(Path(settings.trusted_clients_dir).expanduser())
    return Security(
        plain=not secure,
        certificate=certificate.public_bytes(serialization.Encoding.DER),
        private_key=key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        trusted=trusted,
    )


def _public(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _read(path: str | None, key: str) -> bytes:
    if path is None:
        raise InvalidSetting(
            f"opcua.{key} is required: a non-loopback endpoint is served with Basic256Sha256 "
            f"only; give certificate and private_key ({CERTIFICATE_HELP})"
        )
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as error:
        raise InvalidSetting(
            f"opcua.{key} {path}: cannot read it ({error.strerror}); give the file's path, or "
            f"{CERTIFICATE_HELP}"
        ) from error


def _load_certificate(data: bytes, settings: OpcUaSettings) -> x509.Certificate:
    certificate = _parse_certificate(data, f"opcua.certificate {settings.certificate}")
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise InvalidSetting(
            f"opcua.certificate {settings.certificate} is valid from "
            f"{certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}, not now: clients would refuse it; "
            f"{CERTIFICATE_HELP} (or check the clock)"
        )
    return certificate


def _parse_certificate(data: bytes, what: str) -> x509.Certificate:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as error:
        raise InvalidSetting(
            f"{what} is not an X.509 certificate in PEM or DER ({error}); {CERTIFICATE_HELP}"
        ) from error


def _load_private_key(data: bytes, settings: OpcUaSettings) -> rsa.RSAPrivateKey:
    what = f"opcua.private_key {settings.private_key}"
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError as error:  # cryptography's way of saying it needs a password
        raise InvalidSetting(
            f"{what} is encrypted, and the daemon has no password for it: store it "
            "unencrypted, readable by the daemon's user only (openssl pkey -in KEY -out "
            "KEY.plain; chmod 600)"
        ) from error
    except ValueError as error:
        raise InvalidSetting(
            f"{what} is not a private key in PEM or DER ({error}); {CERTIFICATE_HELP}"
        ) from error
    if not isinstance(key, rsa.RSAPrivateKey) or not 2048 <= key.key_size <= 4096:
        raise InvalidSetting(
            f"{what}: Basic256Sha256 needs an RSA key of 2048 to 4096 bits; {CERTIFICATE_HELP}"
        )
    return key


def _check_uri(certificate: x509.Certificate, uri: str, settings: OpcUaSettings) -> None:
    """Strict clients compare the certificate's URI with the server's ApplicationUri."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if uri not in uris:
        log.warning(
            "opcua.certificate %s: its subjectAltName has no URI:%s (the server's "
            "ApplicationUri); strict clients refuse such a server: %s",
            settings.certificate,
            uri,
            CERTIFICATE_HELP,
        )


def _load_trusted(folder: Path) -> tuple[x509.Certificate, ...]:
    key = f"opcua.trusted_clients_dir {folder}"
    if not folder.is_dir():
        raise InvalidSetting(
            f"{key} is not a directory: create it and copy the clients' certificates into it"
        )
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _CERT_SUFFIXES)
    if not files:
        raise InvalidSetting(
            f"{key} holds no certificates ({', '.join(_CERT_SUFFIXES)}): copy the clients' "
            "certificates (or their CA's) into it, or leave the key out to allow any"
        )
    return tuple(_parse_certificate(p.read_bytes(), f"{key}: {p.name}") for p in files)


class ClientCheck:
    """Whether a client's application certificate may connect (`Security.trusted`)."""

    def __init__(
        self,
        trusted: tuple[x509.Certificate, ...] | None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._trusted = trusted
        self._trusted_der = frozenset(
            c.public_bytes(serialization.Encoding.DER) for c in trusted or ()
        )
        self._now = now

    def refusal(self, der: bytes | None) -> str | None:
        """Why the client with certificate `der` (None or empty: none) is refused; None:
        it is not."""
        if not der:
            return "no client certificate: connect with Basic256Sha256 SignAndEncrypt"
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            return "an unreadable client certificate"
        subject = certificate.subject.rfc4514_string()
        now = self._now()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            return f"client certificate {subject} is outside its validity period"
        if self._trusted is None or der in self._trusted_der:
            return None
        for issuer in self._trusted:
            try:
                certificate.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return None
        return f"client certificate {subject} is not in opcua.trusted_clients_dir"


class _Access(UserManager):
    """asyncua's user manager: who may activate a session (every client reads only)."""

    def __init__(self, security: Security, check: ClientCheck, refused: Callable[[str], None]):
        self._plain = security.plain
        self._check = check
        self._refused = refused

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        # `certificate`: the secure channel's client certificate (b"" on a NoSecurity one).
        if self._plain and not certificate:
            return User(role=UserRole.User)
        reason = self._check.refusal(certificate)
        if reason is not None:
            self._refused(reason)
            return None
        return User(role=UserRole.User)


class OpcUaServer:
    """The ``opcua`` output: an OPC UA server at `settings.endpoint` for line `line`.

    `cameras` and `classes` (the model card's names) shape the address space
    (`opcua_nodes.address_space`). `secure_on_loopback` is for tests: a loopback endpoint
    offers only Basic256Sha256 too. `clock` (monotonic seconds) and `stale_s` decide when
    missing heartbeats make the system state ``offline``.
    """

    def __init__(
        self,
        settings: OpcUaSettings,
        line: str,
        cameras: Sequence[str],
        classes: Sequence[str],
        *,
        secure_on_loopback: bool = False,
        clock: Callable[[], float] = time.monotonic,
        stale_s: float = STALE_S,
    ) -> None:
        self.settings = settings
        self.line = line
        self.application_uri = f"urn:defectd:{line}"
        self._secure = secure_on_loopback or not is_loopback(opcua_host(settings.endpoint))
        self.values = InspectionValues(
            line, cameras, classes, on_change=self._wake_up, clock=clock, stale_s=stale_s
        )
        self._stats = OutputStats()
        self._refusals = RateLimitedLog(log, period_s=60.0)
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: Background[None] | None = None

    @property
    def stats(self) -> OutputStats:
        return self._stats

    @property
    def endpoint(self) -> str:
        return self.settings.endpoint

    def start(self) -> None:
        """Load the certificates, start the server thread and wait until it listens.
        `InvalidSetting` for certificates that do not fit or an endpoint it cannot bind."""
        if self._thread is not None:
            raise RuntimeError("OpcUaServer.start: already started")
        security = load_security(self.settings, self.application_uri, secure=self._secure)
        _quiet_asyncua()
        self._thread = Background(lambda: asyncio.run(self._serve(security)), "opcua-server")
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._listening.wait(0.05):
            if not self._thread.is_alive():
                self._thread.result()  # raises what stopped it
                raise RuntimeError("the OPC UA server thread ended before it listened")
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the OPC UA server did not start in {START_TIMEOUT_S:g} s")
        log.info(
            "OPC UA server on %s (%s)",
            self.endpoint,
            "Basic256Sha256 SignAndEncrypt" if not security.plain else "NoSecurity, anonymous",
        )

    def handle(self, topic: str, payload: dict[str, Any]) -> None:
        """One event: the node values it changes are written by the server thread."""
        self.values.apply(topic, payload)

    def tick(self) -> None:
        """Heartbeats that stopped make the state offline; a server thread that died raises."""
        self.values.tick()
        thread = self._thread
        if thread is not None and not self._stopping.is_set() and not thread.is_alive():
            self._stats.connected = False
            thread.result()
            raise RuntimeError("the OPC UA server thread ended")

    def close(self) -> None:
        """Stop the server (sessions closed, port freed) within a few seconds."""
        self._stopping.set()
        self._wake_up()
        thread = self._thread
        if thread is None:
            return
        if not thread.wait(STOP_TIMEOUT_S + 3):
            log.warning("the OPC UA server thread did not stop in time; left behind")
            return
        if not self._listening.is_set():
            return  # it never served: `start` raised what stopped it
        try:
            thread.result()
        except Exception:  # the stage is stopping: say what happened, do not mask the stop
            log.exception("the OPC UA server ended with an error")

    # --- the server thread -------------------------------------------------------------------

    def _wake_up(self) -> None:
        """From any thread: let the server thread write the changes."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return  # not serving yet: the snapshot taken at start has the values
        with contextlib.suppress(RuntimeError):  # a closed loop: nothing more to write
            loop.call_soon_threadsafe(wake.set)

    async def _serve(self, security: Security) -> None:
        self._wake = wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        server, namespace = await self._create(security)
        variables = await build_nodes(server, namespace, self.values.specs, self.values.snapshot())
        types = {s.path: s.variant for s in self.values.specs if s.variant is not None}
        try:
            await server.start()
        except OSError as error:
            raise InvalidSetting(
                f"opcua.endpoint {self.endpoint}: cannot listen there ({error.strerror}); "
                "another program may hold the port: choose a free one"
            ) from error
        self._stats.connected = True
        self._listening.set()
        try:
            while not self._stopping.is_set():
                await wake.wait()
                wake.clear()
                if self._stopping.is_set():
                    break
                await self._write(server, variables, types, self.values.take_changes())
                await asyncio.sleep(COALESCE_S)
        finally:
            self._stats.connected = False
            try:
                await asyncio.wait_for(server.stop(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("the OPC UA server did not stop in %g s", STOP_TIMEOUT_S)

    async def _create(self, security: Security) -> tuple[Server, int]:
        check = ClientCheck(security.trusted)
        server = Server(user_manager=_Access(security, check, self._refused))
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"defectd {self.line}")
        server.product_uri = "urn:defectd"
        server.manufacturer_name = "defectd"
        await server.set_application_uri(self.application_uri)
        policies = []
        if security.plain:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        if security.encrypted:
            await server.load_certificate(security.certificate or b"", format="der")
            await server.load_private_key(security.private_key or b"", format="der")
            policies.append(ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt)

            async def validate(certificate: x509.Certificate, _app: Any) -> None:
                der = certificate.public_bytes(serialization.Encoding.DER)
                if (reason := check.refusal(der)) is not None:
                    self._refused(reason)
                    raise ServiceError(StatusCodes.BadCertificateUntrusted)

            server.set_certificate_validator(validate)
        server.set_security_policy(policies)
        server.set_identity_tokens([ua.AnonymousIdentityToken])
        return server, await server.register_namespace(NAMESPACE)

    def _refused(self, reason: str) -> None:
        self._refusals.warning(reason, "OPC UA client refused: %s", reason)

    async def _write(
        self,
        server: Server,
        variables: dict[str, ua.NodeId],
        types: dict[str, ua.VariantType],
        changes: dict[str, Value],
    ) -> None:
        now = ua.DateTime.now(UTC)
        for path, value in changes.items():
            data = ua.DataValue(
                ua.Variant(value, types[path]), SourceTimestamp=now, ServerTimestamp=now
            )
            await server.write_attribute_value(variables[path], data)
        self._stats.delivered += len(changes)


def _quiet_asyncua() -> None:
    """asyncua logs every session, request fault and refused client at INFO to ERROR; the
    refusals that matter are logged here, rate-limited."""
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    logging.getLogger("asyncua.server.uaprocessor").setLevel(logging.CRITICAL)
