"""The OPC UA server output against a real asyncua client over loopback: the tree and its
values, data changes while events arrive, Basic256Sha256 with certificates made here, the
errors a bad certificate gives, and the real daemon serving its counters."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import zmq

pytest.importorskip("asyncua", reason="the OPC UA server needs defectd[opcua] (asyncua)")

from asyncua import Client, Node, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from defectd.daemon.config.schema import OpcUaSettings
from defectd.daemon.outputs.opcua_nodes import (
    NAMESPACE,
    ROOT,
    InspectionValues,
    address_space,
    node_id,
)
from defectd.daemon.outputs.opcua_server import ClientCheck, OpcUaServer
from defectd.daemon.tools.loopback import (
    Camera,
    DaemonProcess,
    LoopbackPorts,
    free_port,
    line_config,
)
from defectd.engines.errors import InvalidSetting
from defectd.engines.synth import SyntheticLine

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"
CAMERAS = ("cam0", "cam1")
CLASSES = ("pits", "crazing", "scratches", "patches")
RUN = "0123456789abcdef"
CLIENT_URI = "urn:defectd:test:plc"
T0 = 1_714_564_801_000_000_000  # a capture time, ns


# --- events as the daemon sends them (checked against docs/schemas) ----------------------------


def _valid(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(payload)
    return payload


def status(*, ready: bool = True, fps: float = 0.0, dropped: int = 0, run: str = RUN) -> Any:
    engine = {
        "backend": "onnxruntime",
        "device": "cpu",
        "precision": "fp32",
        "max_batch": 4,
        "model": "defectd-default 1.0.0",
        "classes": list(CLASSES),
    }
    payload = {
        "schema": "defectd.status/1",
        "topic_seq": 0,
        "run_id": run,
        "publish_ns": T0,
        "uptime_s": 12.5,
        "fps": fps,
        "frames": {"received": 9, "processed": 9, "dropped": {"queue_full": dropped}, "lost": 0},
        "queue_depth": 0,
        "slots": {"used": 0, "total": 16},
        "engine": engine if ready else None,
        "ready": ready,
    }
    return "status", _valid("status-event", payload)


def frame(camera: str, seq: int, *, coil: str | None = None, defects: int = 0) -> Any:
    payload: dict[str, Any] = {
        "schema": "defectd.frame/1",
        "topic_seq": seq,
        "run_id": RUN,
        "line": "line1",
        "camera_id": camera,
        "seq": seq,
        "capture_ns": T0 + seq * 10_000_000,
        "receive_ns": T0 + seq * 10_000_000 + 1000,
        "publish_ns": T0 + seq * 10_000_000 + 2000,
        "latency_ms": 0.002,
        "daemon_latency_ms": 0.001,
        "classes": ["scratches"] if defects else [],
        "defect_count": defects,
        "batch_size": 1,
    }
    if coil is not None:
        payload.update(coil_id=coil, position_m=seq * 0.128)
    return f"frame.line1.{camera}", _valid("frame-summary", payload)


def defect(camera: str, seq: int, name: str, regions: int, *, coil: str | None = None) -> Any:
    region = {
        "bbox": [10, 10, 20, 5],
        "area_px": 100,
        "mean_score": 0.8,
        "max_score": 0.9,
        "centroid": [20.0, 12.5],
    }
    payload: dict[str, Any] = {
        "schema": "defectd.defect/1",
        "topic_seq": seq,
        "run_id": RUN,
        "line": "line1",
        "camera_id": camera,
        "seq": seq,
        "capture_ns": T0 + seq * 10_000_000,
        "frame_shape": [256, 1600],
        "class_id": CLASSES.index(name) + 1,
        "class_name": name,
        "presence": 0.9,
        "area_px": 100 * regions,
        "region_count": regions,
        "regions": [region] * regions,
        "model": "defectd-default 1.0.0",
    }
    if coil is not None:
        payload["coil_id"] = coil
    return f"defect.line1.{camera}.{name}", _valid("defect-event", payload)


def coil_closed(coil: str, counts: dict[str, int], *, reason: str = "next_coil") -> Any:
    classes = [
        {"class_name": n, "count": c, "area_mm2": 10.0 * c, "per_100m": 1.0, "per_m2": 0.1}
        for n, c in counts.items()
    ]
    payload = {
        "schema": "defectd.coil/1",
        "topic_seq": 0,
        "run_id": RUN,
        "line": "line1",
        "coil_id": coil,
        "started_ns": T0,
        "ended_ns": T0 + 2_000_000_000,
        "end_reason": reason,
        "head_m": 0.0,
        "tail_m": 1.024,
        "inspected_m": 1.024,
        "width_mm": 800.0,
        "frames": 8,
        "defects": sum(counts.values()),
        "classes": classes,
        "gap_m": 0.128,
        "largest": [],
        "grade": "B",
        "grade_reasons": ["count over 0"],
        "anomalies": {},
    }
    return f"coil.line1.{coil}", _valid("coil-event", payload)


# --- the values alone ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _values(clock: FakeClock | None = None) -> InspectionValues:
    return InspectionValues("line1", CAMERAS, CLASSES, clock=clock or FakeClock(), stale_s=5.0)


def test_system_state_follows_the_heartbeats() -> None:
    clock = FakeClock()
    values = _values(clock)
    assert values.value("SystemState") == "offline" and values.value("Ready") is False
    values.apply(*status(ready=False))
    assert values.value("SystemState") == "offline"  # the engine still loads
    values.apply(*status())
    assert (values.value("SystemState"), values.value("Ready")) == ("ready", True)
    assert values.value("Engine/Backend") == "onnxruntime"
    values.apply(*status(fps=40.0))
    assert values.value("SystemState") == "running"
    values.apply(*status(fps=40.0, dropped=3))
    assert values.value("SystemState") == "error"
    assert values.value("Cameras/cam1/FramesDropped") == 3  # the line's total
    values.apply(*status(fps=40.0, dropped=3))  # no more drops
    assert values.value("SystemState") == "running"
    values.apply(*status(fps=40.0, dropped=5, run="fedcba9876543210"))  # a restart: from zero
    assert values.value("SystemState") == "running"
    clock.now += 6
    values.tick()
    assert (values.value("SystemState"), values.value("Ready")) == ("offline", False)


def test_coils_count_their_frames_and_regions_and_a_new_coil_starts_from_zero() -> None:
    values = _values()
    values.apply(*defect("cam0", 0, "scratches", 2, coil="C-1"))
    values.apply(*frame("cam0", 0, coil="C-1", defects=2))
    values.apply(*frame("cam1", 0, coil="C-1"))
    assert values.value("CurrentCoil/CoilId") == "C-1"
    assert values.value("CurrentCoil/Frames") == 2
    assert values.value("CurrentCoil/DefectsByClass/scratches") == 2
    assert values.value("Cameras/cam0/DefectsFound") == 2
    assert values.value("Cameras/cam0/LastDefectClass") == "scratches"
    assert values.value("Cameras/cam0/LastFrameTime") == datetime.fromtimestamp(T0 / 1e9, UTC)
    values.apply(*frame("cam0", 1, coil="C-2"))
    assert (values.value("CurrentCoil/CoilId"), values.value("CurrentCoil/Frames")) == ("C-2", 1)
    assert values.value("CurrentCoil/DefectsByClass/scratches") == 0
    values.apply(*coil_closed("C-1", {"scratches": 1}))
    assert values.value("LastCoil/CoilId") == "C-1"
    assert values.value("LastCoil/DefectsByClass/scratches") == 1
    assert values.value("LastCoil/DefectsByClass/pits") == 0
    assert values.value("CurrentCoil/CoilId") == "C-2"  # next_coil: the next one goes on
    values.take_changes()
    values.apply(*coil_closed("C-2", {}, reason="silence"))
    assert values.value("CurrentCoil/CoilId") == "" and values.value("LastCoil/CoilsClosed") == 2
    changed = list(values.take_changes())
    assert changed.index("LastCoil/CoilsClosed") > changed.index("LastCoil/EndReason")
    assert values.take_changes() == {}


# --- certificates and a client --------------------------------------------------------------


def make_certificate(folder: Path, name: str, uri: str, *, der: bool = False) -> tuple[Path, Path]:
    """A self-signed RSA 2048 certificate for `uri` on loopback and its key: (cert, key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=True,
        data_encipherment=True,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    names = [
        x509.UniformResourceIdentifier(uri),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    purposes = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
        .sign(key, hashes.SHA256())
    )
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    cert_path = folder / f"{name}.{'der' if der else 'pem'}"
    key_path = folder / f"{name}-key.pem"
    cert_path.write_bytes(certificate.public_bytes(encoding))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def settings(port: int, **keys: Any) -> OpcUaSettings:
    return OpcUaSettings(enabled=True, endpoint=f"opc.tcp://127.0.0.1:{port}/defectd", **keys)


def run(scenario: Callable[[], Awaitable[None]], timeout_s: float = 60) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout_s))


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def read(client: Client, path: str) -> Any:
    namespace = await client.get_namespace_index(NAMESPACE)
    return await client.get_node(node_id(path, namespace)).read_value()


async def tree(node: Node, prefix: str = "") -> set[str]:
    """Paths of everything below `node` in our namespace (the browse names, ``/``-joined)."""
    paths: set[str] = set()
    for child in await node.get_children():
        name = (await child.read_browse_name()).Name
        path = f"{prefix}/{name}" if prefix else name
        paths |= {path} | await tree(child, path)
    return paths


class Changes:
    """A subscription handler: the (NodeId text, value) of each data change, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def datachange_notification(self, node: Node, value: Any, data: Any) -> None:
        self.seen.append((str(node.nodeid.Identifier), value))

    def of(self, path: str) -> list[Any]:
        name = node_id(path, 0).Identifier
        return [value for text, value in self.seen if text == name]


@pytest.fixture
def plain_server() -> Iterator[OpcUaServer]:
    server = OpcUaServer(settings(free_port()), "line1", CAMERAS, CLASSES)
    server.start()
    try:
        yield server
    finally:
        server.close()


# --- the server -------------------------------------------------------------------------------


def test_a_client_browses_the_tree_and_reads_the_values(plain_server: OpcUaServer) -> None:
    async def scenario() -> None:
        client = Client(plain_server.endpoint)
        endpoints = await client.connect_and_get_server_endpoints()
        assert {e.SecurityMode for e in endpoints} == {ua.MessageSecurityMode.None_}
        async with client:
            namespace = await client.get_namespace_index(NAMESPACE)
            root = await client.nodes.objects.get_child(f"{namespace}:{ROOT}")
            assert root.nodeid == ua.NodeId(ROOT, namespace)
            assert await tree(root) == {s.path for s in address_space(CAMERAS, CLASSES)}
            assert await read(client, "Line") == "line1"
            assert await read(client, "SystemState") == "offline"
            assert await read(client, "Cameras/cam1/FramesProcessed") == 0
            processed = client.get_node(node_id("Cameras/cam0/FramesProcessed", namespace))
            assert await processed.read_data_type_as_variant_type() == ua.VariantType.UInt64
            assert "since the server started" in (await processed.read_description()).Text
            with pytest.raises(ua.UaStatusCodeError):  # read-only
                await processed.write_value(ua.Variant(5, ua.VariantType.UInt64))

    run(scenario)
    assert plain_server.stats.connected


def test_subscribers_see_the_values_change_as_events_arrive(plain_server: OpcUaServer) -> None:
    watched = (
        "SystemState",
        "Cameras/cam0/FramesProcessed",
        "CurrentCoil/CoilId",
        "CurrentCoil/DefectsByClass/pits",
        "LastCoil/CoilsClosed",
    )

    async def scenario() -> None:
        async with Client(plain_server.endpoint) as client:
            namespace = await client.get_namespace_index(NAMESPACE)
            changes = Changes()
            subscription = await client.create_subscription(20, changes)
            await subscription.subscribe_data_change(
                [client.get_node(node_id(p, namespace)) for p in watched]
            )
            await until(lambda: _ready(changes.seen, len(watched)), "the initial values")
            plain_server.handle(*status(fps=25.0))
            for seq in range(3):
                plain_server.handle(*defect("cam0", seq, "pits", 1, coil="C-7"))
                plain_server.handle(*frame("cam0", seq, coil="C-7", defects=1))

                async def counted(count: int = seq + 1) -> bool:
                    return changes.of("Cameras/cam0/FramesProcessed")[-1:] == [count]

                await until(counted, f"FramesProcessed {seq + 1}")  # each change seen alone
            plain_server.handle(*frame("cam0", 3, coil="C-8"))
            plain_server.handle(*coil_closed("C-7", {"pits": 2}))

            async def settled() -> bool:
                return changes.of("LastCoil/CoilsClosed")[-1:] == [1]

            await until(settled, "LastCoil/CoilsClosed 1")
            await until(
                lambda: _ready(changes.of("Cameras/cam0/FramesProcessed"), 5), "four frames"
            )
            assert await read(client, "LastCoil/CoilId") == "C-7"
            assert await read(client, "LastCoil/DefectsByClass/pits") == 2
            assert await read(client, "CurrentCoil/Frames") == 1
            assert changes.of("SystemState") == ["offline", "running"]
            assert changes.of("Cameras/cam0/FramesProcessed") == [0, 1, 2, 3, 4]
            assert changes.of("CurrentCoil/CoilId") == ["", "C-7", "C-8"]
            assert changes.of("CurrentCoil/DefectsByClass/pits")[:4] == [0, 1, 2, 3]

    run(scenario)
    assert plain_server.stats.delivered > 0


async def _ready(seen: list[Any], count: int) -> bool:
    return len(seen) >= count


def test_basic256sha256_admits_trusted_certificates_only(tmp_path: Path) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    server_cert, server_key = make_certificate(tmp_path, "server", "urn:defectd:line1", der=True)
    client_cert, client_key = make_certificate(tmp_path, "plc", CLIENT_URI)
    (trusted / client_cert.name).write_bytes(client_cert.read_bytes())
    stranger_cert, stranger_key = make_certificate(tmp_path, "stranger", CLIENT_URI)
    config = settings(
        free_port(),
        certificate=str(server_cert),
        private_key=str(server_key),
        trusted_clients_dir=str(trusted),
    )
    server = OpcUaServer(config, "line1", CAMERAS, CLASSES, secure_on_loopback=True)
    server.start()

    def client() -> Client:
        made = Client(server.endpoint)
        made.application_uri = CLIENT_URI
        return made

    async def secure(cert: Path, key: Path) -> Client:
        made = client()
        await made.set_security(
            SecurityPolicyBasic256Sha256,
            str(cert),
            str(key),
            server_certificate=str(server_cert),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
        return made

    async def scenario() -> None:
        endpoints = await client().connect_and_get_server_endpoints()
        assert [(e.SecurityPolicyUri.rsplit("#")[-1], e.SecurityMode) for e in endpoints] == [
            ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt)
        ]
        async with await secure(client_cert, client_key) as plc:
            assert await read(plc, "Line") == "line1"
        with pytest.raises(ua.UaError, match="No matching endpoints"):
            await client().connect()  # no security: asyncua sees no endpoint for it
        await _refused_without_security(server.endpoint)  # nor one that tries anyway
        with pytest.raises(ua.UaStatusCodeError) as stranger:
            await (await secure(stranger_cert, stranger_key)).connect()
        assert stranger.value.code == StatusCodes.BadCertificateUntrusted

    try:
        run(scenario)
    finally:
        server.close()


async def _refused_without_security(endpoint: str) -> None:
    """A client that ignores the endpoints offered and asks for a session without security:
    the session is not activated, so nothing can be read."""
    rogue = Client(endpoint)
    await rogue.connect_socket()
    try:
        await rogue.send_hello()
        await rogue.open_secure_channel()
        session = ua.CreateSessionParameters()
        session.ClientDescription.ApplicationUri = CLIENT_URI
        session.ClientDescription.ApplicationType = ua.ApplicationType.Client
        session.EndpointUrl = endpoint
        session.SessionName = "rogue"
        session.ClientNonce = bytes(32)
        session.RequestedSessionTimeout = 10_000
        await rogue.uaclient.create_session(session)
        activate = ua.ActivateSessionParameters()
        activate.UserIdentityToken = ua.AnonymousIdentityToken(PolicyId="anonymous")
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await rogue.uaclient.activate_session(activate)
        assert refused.value.code == StatusCodes.BadUserAccessDenied
        read = ua.ReadParameters()
        read.NodesToRead.append(ua.ReadValueId(NodeId=node_id("Line", 2)))
        with pytest.raises(ua.UaStatusCodeError) as unread:
            await rogue.uaclient.read(read)
        assert unread.value.code == StatusCodes.BadSessionNotActivated
    finally:
        rogue.disconnect_socket()


def test_client_check_accepts_what_the_trusted_directory_holds(tmp_path: Path) -> None:
    cert, _ = make_certificate(tmp_path, "plc", CLIENT_URI)
    other, _ = make_certificate(tmp_path, "other", CLIENT_URI)
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    der = loaded.public_bytes(serialization.Encoding.DER)
    other_der = x509.load_pem_x509_certificate(other.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    check = ClientCheck((loaded,))
    assert check.refusal(der) is None
    assert "not in opcua.trusted_clients_dir" in str(check.refusal(other_der))
    assert "no client certificate" in str(check.refusal(b""))
    assert ClientCheck(None).refusal(other_der) is None  # no directory: any certificate
    later = ClientCheck(None, now=lambda: datetime.now(UTC) + timedelta(days=30))
    assert "validity" in str(later.refusal(der))


def test_certificate_problems_name_the_key_and_the_fix(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "server", "urn:defectd:line1")
    other_cert, _ = make_certificate(tmp_path, "other", "urn:defectd:line1")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [
        (settings(free_port(), certificate=str(tmp_path / "missing.pem"), private_key=str(key)),
         "opcua.certificate"),
        (settings(free_port(), certificate=str(garbage), private_key=str(key)),
         "not an X.509 certificate"),
        (settings(free_port(), certificate=str(cert), private_key=str(garbage)),
         "opcua.private_key"),
        (settings(free_port(), certificate=str(other_cert), private_key=str(key)),
         "is not the key of opcua.certificate"),
        (settings(free_port(), certificate=str(cert), private_key=str(key),
                  trusted_clients_dir=str(tmp_path / "none")), "opcua.trusted_clients_dir"),
        (OpcUaSettings(enabled=True, endpoint=f"opc.tcp://0.0.0.0:{free_port()}/defectd"),
         "opcua.certificate is required"),
    ]  # fmt: skip
    for config, text in cases:
        with pytest.raises(InvalidSetting, match=text) as caught:
            OpcUaServer(config, "line1", CAMERAS, CLASSES).start()
        assert "docs/integration.md" in str(caught.value) or "directory" in str(caught.value)


@pytest.mark.slow
def test_close_frees_the_port_and_a_taken_port_is_a_clear_error() -> None:
    port = free_port()
    server = OpcUaServer(settings(port), "line1", CAMERAS, CLASSES)
    server.start()
    began = time.monotonic()
    server.close()
    assert time.monotonic() - began < 3
    assert not server.stats.connected
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))  # free again
        taken.listen()
        with pytest.raises(InvalidSetting, match="choose a free one"):
            OpcUaServer(settings(port), "line1", CAMERAS, CLASSES).start()


# --- the real daemon --------------------------------------------------------------------------


@pytest.mark.slow
def test_the_daemon_serves_its_counters_and_coils(tmp_path: Path) -> None:
    ports = LoopbackPorts()
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/defectd"
    config = line_config(
        ports,
        ("cam0",),
        push=True,
        engine={"backend": "onnxruntime", "max_batch": 4, "threads": 1},
        sections={
            "batching": {"max_wait_ms": 10.0, "policy": "block"},
            "publish": {"status_interval_s": 0.2},
            "store": {"enabled": True, "url": f"sqlite:///{tmp_path / 'defects.db'}"},
            "opcua": {"enabled": True, "endpoint": endpoint},
        },
    )
    config["cameras"][0].update(across_mm_per_px=0.5, along_from="frames")
    line = SyntheticLine(13)
    images = [line.frame(i).image for i in range(12)]
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()

    async def connect() -> Client:
        deadline = time.monotonic() + 60
        while True:
            client = Client(endpoint)
            try:
                await client.connect()
                return client
            except (OSError, TimeoutError, ua.UaError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def scenario() -> None:
        client = await connect()
        try:
            namespace = await client.get_namespace_index(NAMESPACE)
            changes = Changes()
            subscription = await client.create_subscription(20, changes)
            watched = ("SystemState", "Cameras/cam0/FramesProcessed")
            await subscription.subscribe_data_change(
                [client.get_node(node_id(p, namespace)) for p in watched]
            )

            async def ready() -> bool:
                return bool(await read(client, "Ready"))

            await until(ready, "Ready (the feed reaches the server)", 30)
            camera = Camera(ports.camera_endpoint, context=context)
            for seq, image in enumerate(images):
                camera.send("cam0", seq, image, coil_id="C-A" if seq < 6 else "C-B")
            camera.close()

            async def processed() -> bool:
                return bool(await read(client, "Cameras/cam0/FramesProcessed") == len(images))

            async def closed() -> bool:
                return bool(await read(client, "LastCoil/CoilId") == "C-A")

            await until(processed, "12 frames counted", 60)
            await until(closed, "coil C-A closed", 30)
            assert await read(client, "Line") == "line1"
            assert await read(client, "Engine/Backend") == "onnxruntime"
            assert await read(client, "CurrentCoil/CoilId") == "C-B"
            assert await read(client, "CurrentCoil/Frames") == 6
            assert await read(client, "LastCoil/Frames") == 6
            assert await read(client, "LastCoil/EndReason") == "next_coil"
            assert await read(client, "LastCoil/CoilsClosed") == 1
            assert await read(client, "LastCoil/InspectedM") == pytest.approx(6 * 256 * 0.5e-3)
            counts = changes.of("Cameras/cam0/FramesProcessed")
            assert counts[0] == 0 and counts[-1] == len(images) and counts == sorted(counts)
            assert len(counts) > 2  # it changed during the run, not once at the end
            assert "running" in changes.of("SystemState")
        finally:
            await client.disconnect()

    try:
        with DaemonProcess(config, tmp_path, ports) as daemon:
            daemon.wait_ready(60)
            run(scenario, 150)
            assert daemon.stop() == 0
    finally:
        context.destroy(linger=0)
