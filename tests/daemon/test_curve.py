"""CURVE on the ingest and event sockets (docs/security.md): keys, config, the ZAP allow-list
and the refusal count on real loopback sockets, then the real daemon end to end."""

from __future__ import annotations

import contextlib
import json
import logging
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
import zmq

from defectd.daemon.background import Background
from defectd.daemon.clients.simulator import SimulatorConfig
from defectd.daemon.clients.tail import TailConfig
from defectd.daemon.config import ConfigError, config_warnings, load_config
from defectd.daemon.curve import (
    CurveKeyError,
    KeyPair,
    RejectionWatch,
    load_allow_list,
    load_key_pair,
    load_public_key,
    make_client,
    make_server,
    start_authenticator,
    write_key_pair,
)
from defectd.daemon.protocol import FrameHeader, encode_frame
from defectd.daemon.tools.loopback import DaemonProcess, LoopbackPorts, free_port, metric
from tests.daemon.pipeline_helpers import HEIGHT, REPO, WIDTH, small_line

Context = zmq.Context[zmq.Socket[bytes]]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Key pairs for the daemon, an allowed and an unknown camera and subscriber; the
    allowed ones' public keys in the two allow-lists."""
    made: dict[str, Path] = {}
    for name in ("daemon", "cam_ok", "cam_bad", "sub_ok", "sub_bad"):
        _, made[name] = write_key_pair(tmp_path / "keys", name)
    for folder, name in (("ingest", "cam_ok"), ("subscribers", "sub_ok")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{name}.key").write_bytes(
            (tmp_path / "keys" / f"{name}.key").read_bytes()
        )
    return made


def frame_parts(camera: str, seq: int, with_topic: bool = False) -> list[bytes]:
    header = FrameHeader(camera, seq, time.time_ns(), "mono8", WIDTH, HEIGHT)
    return encode_frame(header, np.zeros((HEIGHT, WIDTH), np.uint8).tobytes(), with_topic)


# --- keys --------------------------------------------------------------------------------------


def test_keygen_writes_a_private_secret_and_refuses_to_overwrite(tmp_path: Path) -> None:
    public, secret = write_key_pair(tmp_path / "k", "cam0")
    assert (public.name, secret.name) == ("cam0.key", "cam0.key_secret")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    pair = load_key_pair(secret)
    assert load_public_key(public) == pair.public and len(pair.secret) == 40
    assert b"secret" not in public.read_bytes().split(b"curve", 1)[1]
    assert pair.secret.decode() not in repr(pair)
    with pytest.raises(FileExistsError, match="--force"):
        write_key_pair(tmp_path / "k", "cam0")
    assert load_key_pair(secret) == pair  # untouched
    write_key_pair(tmp_path / "k", "cam0", force=True)
    assert load_key_pair(secret) != pair
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["cam0.key", "cam0.key_secret"]


def test_keygen_command_prints_the_public_key_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from defectd.daemon.cli import main

    assert main(["keygen", "--out", str(tmp_path), "--name", "d"]) == 0
    pair = load_key_pair(tmp_path / "d.key_secret")
    out = capsys.readouterr()
    assert pair.public.decode() in out.out
    assert pair.secret.decode() not in out.out + out.err
    assert main(["keygen", "--out", str(tmp_path), "--name", "d"]) == 2
    assert "already exist" in capsys.readouterr().err


def test_key_loading_errors_name_the_file(tmp_path: Path) -> None:
    public, _ = write_key_pair(tmp_path, "x")
    with pytest.raises(CurveKeyError, match=r"x\.key: holds no secret key"):
        load_key_pair(public)
    with pytest.raises(CurveKeyError, match=r"nope\.key_secret: no such file"):
        load_key_pair(tmp_path / "nope.key_secret")
    (tmp_path / "junk.key").write_text("hello\n")
    with pytest.raises(CurveKeyError, match=r"junk\.key: no public-key line"):
        load_public_key(tmp_path / "junk.key")
    with pytest.raises(CurveKeyError, match="no such directory"):
        load_allow_list(tmp_path / "missing")


# --- config ------------------------------------------------------------------------------------


def curve_config(tmp_path: Path, security: dict[str, Any], **camera: Any) -> Path:
    mapping = {
        "line": {"name": "line1"},
        "cameras": [
            {
                "id": "cam0",
                "endpoint": "tcp://127.0.0.1:5556",
                "mode": "bind",
                "width": 1600,
                "height": 256,
                **camera,
            }
        ],
        "security": security,
    }
    path = tmp_path / "defectd.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def test_curve_off_by_default_and_needs_its_keys_when_on(tmp_path: Path) -> None:
    assert load_config(curve_config(tmp_path, {})).security.curve is False
    with pytest.raises(ConfigError) as caught:
        load_config(curve_config(tmp_path, {"curve": True}, mode="connect"))
    found = "\n".join(caught.value.problems)
    for key in (
        "security.server_secret_key: required",
        "security.subscriber_clients_dir: required",
        "cameras[0].server_public_key: required",
    ):
        assert key in found
    assert "ingest_clients_dir" not in found  # no camera binds


def test_missing_key_files_are_reported_as_file_key_problem(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    security = {
        "curve": True,
        "server_secret_key": "keys/daemon.key",  # the public half: wrong file
        "ingest_clients_dir": "no-such-dir",
        "subscriber_clients_dir": "subscribers",
    }
    path = curve_config(tmp_path, security)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: security.server_secret_key: {tmp_path}/keys/daemon.key: holds no secret "
        "key: name the .key_secret file, not the .key one",
        f"{path}: security.ingest_clients_dir: {tmp_path}/no-such-dir: no such directory",
    ]


def test_readable_secret_key_is_warned_about_never_shown(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    security = {
        "curve": True,
        "server_secret_key": "keys/daemon.key_secret",  # relative: from the config's folder
        "ingest_clients_dir": "ingest",
        "subscriber_clients_dir": "subscribers",
    }
    path = curve_config(tmp_path, security)
    config = load_config(path)
    assert config.security.server_secret_key == str(keys["daemon"])
    assert config_warnings(config) == []
    keys["daemon"].chmod(0o644)
    (warning,) = config_warnings(config)
    assert "security.server_secret_key" in warning and "readable by group and others" in warning
    secret = load_key_pair(keys["daemon"]).secret.decode()
    checked = subprocess.run(
        [sys.executable, "-m", "defectd.daemon.cli", "check-config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "warning:" in checked.stderr and "chmod 600" in checked.stderr
    assert secret not in checked.stdout + checked.stderr
    assert "server_secret_key" in checked.stdout  # the path is shown, the key is not


def test_client_options_come_in_pairs(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    with pytest.raises(ValueError, match="both keys"):
        TailConfig(curve_server_key=key)
    with pytest.raises(ValueError, match="give both"):
        SimulatorConfig(mode="push", bind=False, curve_server_key=key)
    with pytest.raises(ValueError, match="binding camera is the CURVE server"):
        SimulatorConfig(bind=True, curve_server_key=key, curve_client_key=key)


# --- the allow-list on real sockets -------------------------------------------------------------


def _pusher(context: Context, endpoint: str, server: bytes, client: KeyPair | None) -> Any:
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, 0)
    if client is not None:
        make_client(sock, client, server)
    sock.connect(endpoint)
    return sock


@pytest.mark.parametrize("late", [False, True], ids=["watched-at-start", "opened-by-a-reload"])
def test_allow_list_lets_known_keys_in_and_counts_the_rest(
    tmp_path: Path,
    keys: dict[str, Path],
    context: Context,
    caplog: pytest.LogCaptureFixture,
    late: bool,
) -> None:
    caplog.set_level(logging.DEBUG)
    daemon = load_key_pair(keys["daemon"])
    refused: list[tuple[str, str]] = []
    auth = start_authenticator(context, tmp_path / "ingest")
    watch = RejectionWatch(lambda socket, reason: refused.append((socket, reason)))
    if late:  # a socket a reload opens joins the watch already running
        watch.start()
    pull = context.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    make_server(pull, daemon)
    watch.watch(pull, "ingest")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pull.bind(endpoint)
    if not late:
        watch.start()
    senders = []
    try:
        good = _pusher(context, endpoint, daemon.public, load_key_pair(keys["cam_ok"]))
        bad = _pusher(context, endpoint, daemon.public, load_key_pair(keys["cam_bad"]))
        plain = _pusher(context, endpoint, daemon.public, None)
        senders = [good, bad, plain]
        got: list[bytes] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (got and len({r for _, r in refused}) == 2):
            for sock, name in ((good, b"good"), (bad, b"bad"), (plain, b"plain")):
                with contextlib.suppress(zmq.Again):
                    sock.send(name, zmq.NOBLOCK)
            while pull.poll(50):
                got.append(pull.recv())
        assert set(got) == {b"good"}
        assert ("ingest", "unknown_key") in refused and ("ingest", "bad_handshake") in refused
    finally:
        watch.close()
        for sock in senders:
            sock.close(0)
        pull.close(0)
        auth.stop()
    assert "refused a client (key not in the allow-list)" in caplog.text
    for path in keys.values():
        assert load_key_pair(path).secret.decode() not in caplog.text


# --- the daemon --------------------------------------------------------------------------------


def _secure_config(tmp_path: Path, ports: LoopbackPorts, keys: dict[str, Path]) -> dict[str, Any]:
    return small_line(
        ports,
        security={
            "curve": True,
            "server_secret_key": str(keys["daemon"]),
            "ingest_clients_dir": str(tmp_path / "ingest"),
            "subscriber_clients_dir": str(tmp_path / "subscribers"),
        },
        logging={"level": "debug"},
    )


def _subscriber(context: Context, endpoint: str, server: bytes, client: KeyPair | None) -> Any:
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    if client is not None:
        make_client(sock, client, server)
    sock.connect(endpoint)
    return sock


def _topics(sock: Any, wait_ms: int = 50) -> list[str]:
    topics = []
    while sock.poll(wait_ms):
        topics.append(sock.recv_multipart()[0].decode())
        wait_ms = 0
    return topics


@pytest.mark.slow
def test_daemon_with_curve_keeps_unknown_cameras_and_subscribers_out(
    tmp_path: Path, keys: dict[str, Path], context: Context
) -> None:
    ports = LoopbackPorts()
    keys["daemon"].chmod(0o640)  # group-readable: warned about at start
    config = _secure_config(tmp_path, ports, keys)
    server = load_key_pair(keys["daemon"]).public
    with DaemonProcess(config, tmp_path, ports) as daemon:
        daemon.wait_ready()
        allowed = _subscriber(
            context, ports.publish_endpoint, server, load_key_pair(keys["sub_ok"])
        )
        unknown = _subscriber(
            context, ports.publish_endpoint, server, load_key_pair(keys["sub_bad"])
        )
        plain = _subscriber(context, ports.publish_endpoint, server, None)
        good = _pusher(context, ports.camera_endpoint, server, load_key_pair(keys["cam_ok"]))
        bad = _pusher(context, ports.camera_endpoint, server, load_key_pair(keys["cam_bad"]))
        good.setsockopt(zmq.SNDTIMEO, 2000)
        seen: dict[str, list[str]] = {"allowed": [], "unknown": [], "plain": []}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for name, sock in (("allowed", allowed), ("unknown", unknown), ("plain", plain)):
                seen[name] += _topics(sock, 20)
            if any(t.startswith("status") for t in seen["allowed"]):
                break
        assert any(t.startswith("status") for t in seen["allowed"]), "allowed subscriber"
        for seq in range(5):
            good.send_multipart(frame_parts("cam0", seq))
            with contextlib.suppress(zmq.Again):  # queued on a link that never completes
                bad.send_multipart(frame_parts("cam1", seq), zmq.NOBLOCK)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for name, sock in (("allowed", allowed), ("unknown", unknown), ("plain", plain)):
                seen[name] += _topics(sock, 20)
            if sum(t.startswith("frame.") for t in seen["allowed"]) >= 5:
                break
        frames = [t for t in seen["allowed"] if t.startswith("frame.")]
        assert frames == ["frame.line1.cam0"] * 5
        assert seen["unknown"] == [] and seen["plain"] == []
        exposition = daemon.metrics()
        assert metric(exposition, "defectd_frames_received_total", camera="cam0") == 5
        assert metric(exposition, "defectd_frames_received_total", camera="cam1") == 0
        for socket, reason in (
            ("ingest", "unknown_key"),
            ("events", "unknown_key"),
            ("events", "bad_handshake"),
        ):
            value = metric(exposition, "defectd_auth_rejected_total", socket=socket, reason=reason)
            assert value >= 1, (socket, reason, value)
        for sock in (allowed, unknown, plain, good, bad):
            sock.close(0)
        assert daemon.stop() == 0
    text = daemon.log_text()
    assert "security.server_secret_key" in text and "readable by group" in text
    assert "refused a client (key not in the allow-list)" in text
    for path in keys.values():  # no secret ever logged, at debug level either
        assert load_key_pair(path).secret.decode() not in text


@pytest.mark.slow
def test_daemon_connects_to_a_curve_camera_with_its_server_key(
    tmp_path: Path, keys: dict[str, Path], context: Context
) -> None:
    """A PUB camera is the CURVE server; the daemon's SUB is its client."""
    ports = LoopbackPorts()
    camera_keys = load_key_pair(keys["cam_ok"])
    camera_endpoint = f"tcp://127.0.0.1:{free_port()}"
    config = _secure_config(tmp_path, ports, keys)
    config["cameras"] = [
        {
            "id": "cam0",
            "endpoint": camera_endpoint,
            "mode": "connect",
            "width": WIDTH,
            "height": HEIGHT,
            "server_public_key": str(keys["cam_ok"].with_suffix(".key")),
        }
    ]
    # The camera's own allow-list holds the daemon's public key.
    (tmp_path / "camera-allow").mkdir()
    (tmp_path / "camera-allow" / "daemon.key").write_bytes(
        keys["daemon"].with_suffix(".key").read_bytes()
    )
    auth = start_authenticator(context, tmp_path / "camera-allow")
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    make_server(pub, camera_keys)
    pub.bind(camera_endpoint)
    server = load_key_pair(keys["daemon"]).public
    try:
        with DaemonProcess(config, tmp_path, ports) as daemon:
            daemon.wait_ready()
            sub = _subscriber(
                context, ports.publish_endpoint, server, load_key_pair(keys["sub_ok"])
            )
            frames: list[str] = []
            seq = 0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(frames) < 3:
                pub.send_multipart(frame_parts("cam0", seq, with_topic=True))
                seq += 1
                frames += [t for t in _topics(sub, 100) if t.startswith("frame.")]
            assert len(frames) >= 3 and set(frames) == {"frame.line1.cam0"}
            sub.close(0)
            assert daemon.stop() == 0
    finally:
        pub.close(0)
        auth.stop()


# --- the clients: simulate and tail ------------------------------------------------------------


def test_simulator_pushes_as_a_curve_client(
    tmp_path: Path, keys: dict[str, Path], context: Context
) -> None:
    from defectd.daemon.clients.simulator import Simulator

    daemon = load_key_pair(keys["daemon"])
    auth = start_authenticator(context, tmp_path / "ingest")
    pull = context.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    make_server(pull, daemon)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pull.bind(endpoint)
    try:
        config = SimulatorConfig(
            cameras=("cam0",),
            frames=3,
            fps=0,
            mode="push",
            endpoint=endpoint,
            bind=False,
            curve_server_key=keys["daemon"].with_suffix(".key"),
            curve_client_key=keys["cam_ok"],
        )
        assert Simulator(config, context=context).run().sent == 3
        assert pull.poll(5000)
        seqs = [json.loads(pull.recv_multipart()[0])["seq"] for _ in range(3)]
        assert seqs == [0, 1, 2]
    finally:
        pull.close(0)
        auth.stop()


def test_tail_subscribes_as_a_curve_client(
    tmp_path: Path, keys: dict[str, Path], context: Context
) -> None:
    import io
    import threading

    from defectd.daemon.clients.tail import run_tail
    from defectd.daemon.events import FrameCounts, StatusEvent, TopicSequencer, encode

    status = StatusEvent(
        publish_ns=time.time_ns(),
        uptime_s=1.0,
        fps=0.0,
        frames=FrameCounts(),
        queue_depth=0,
        slots_used=0,
        slots_total=2,
        engine=None,
        ready=False,
    )

    daemon = load_key_pair(keys["daemon"])
    auth = start_authenticator(context, tmp_path / "subscribers")
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    make_server(pub, daemon)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub.bind(endpoint)
    stop = threading.Event()

    def publish() -> None:
        sequencer = TopicSequencer()
        while not stop.wait(0.05):
            pub.send_multipart(encode(status, sequencer))

    sender = Background(publish, "status-publisher").start()
    try:
        out = io.StringIO()
        config = TailConfig(
            endpoint=endpoint,
            count=2,
            timeout_s=5,
            curve_server_key=keys["daemon"].with_suffix(".key"),
            curve_client_key=keys["sub_ok"],
        )
        assert run_tail(config, out, io.StringIO()).ended == "count"
        refused = TailConfig(
            endpoint=endpoint,
            timeout_s=1,
            curve_server_key=keys["daemon"].with_suffix(".key"),
            curve_client_key=keys["sub_bad"],
        )
        assert run_tail(refused, io.StringIO(), io.StringIO()).printed == 0
    finally:
        stop.set()
        sender.wait()
        pub.close(0)
        auth.stop()
    sender.result()  # raises what the publishing thread raised


def test_simulator_binds_as_the_curve_server(keys: dict[str, Path], context: Context) -> None:
    """A PUB camera is the server; the daemon's SUB (here a plain one) holds its public key."""
    from defectd.daemon.clients.simulator import Simulator

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    config = SimulatorConfig(
        cameras=("cam0",),
        frames=3,
        fps=0,
        endpoint=endpoint,
        wait_subscribers=1,
        wait_timeout_s=10,
        curve_server_key=keys["cam_ok"],
    )
    simulator = Simulator(config, context=context)
    sender = Background(lambda: simulator.run().sent, "simulator").start()
    simulator.bound.wait(5)
    sub = _subscriber(
        context, endpoint, load_public_key(keys["cam_ok"]), load_key_pair(keys["daemon"])
    )
    try:
        topics = [sub.recv_multipart()[0] for _ in range(3) if sub.poll(10_000)]
        assert topics == [b"cam0"] * 3
    finally:
        sender.wait(15)
        sub.close(0)
    assert sender.result(timeout_s=0) == 3
