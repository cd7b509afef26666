"""The health server: a real HTTP server on 127.0.0.1, port 0, asked with urllib."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from defectd.daemon.health import HealthServer, HealthServerError, Heartbeat
from defectd.daemon.metrics import CONTENT_TYPE, create_metrics

TIMEOUT_S = 10


@dataclass
class FakeDaemon:
    """What the supervisor hands the server: readiness checks and a loop pulse."""

    checks: dict[str, bool] = field(
        default_factory=lambda: {"engine_loaded": False, "engine_warmed": False, "stages": False}
    )
    alive: bool = True

    def ready(self) -> Mapping[str, bool]:
        return dict(self.checks)


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes


def _get(server: HealthServer, path: str, method: str = "GET") -> Reply:
    request = urllib.request.Request(server.url + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return Reply(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers["Content-Type"], error.read())


@pytest.fixture
def daemon() -> FakeDaemon:
    return FakeDaemon()


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    metrics = create_metrics(("top",), registry=registry)
    metrics.frame_received("top")
    return registry


@pytest.fixture
def server(daemon: FakeDaemon, registry: CollectorRegistry) -> Iterator[HealthServer]:
    with HealthServer(
        render=lambda: generate_latest(registry),
        ready=daemon.ready,
        alive=lambda: daemon.alive,
        port=0,
    ) as server:
        yield server


def test_binds_localhost_on_a_free_port(server: HealthServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_metrics(server: HealthServer) -> None:
    reply = _get(server, "/metrics")
    assert reply.status == 200
    assert reply.content_type == CONTENT_TYPE
    assert b'defectd_frames_received_total{camera="top"} 1.0' in reply.body
    assert _get(server, "/metrics?name[]=x").status == 200  # query strings are ignored


def test_healthz_follows_the_supervisor_loop(server: HealthServer, daemon: FakeDaemon) -> None:
    reply = _get(server, "/healthz")
    assert (reply.status, reply.body) == (200, b"ok\n")
    daemon.alive = False
    reply = _get(server, "/healthz")
    assert reply.status == 503
    assert b"supervisor loop" in reply.body


def test_readyz_flips_when_every_check_passes(server: HealthServer, daemon: FakeDaemon) -> None:
    reply = _get(server, "/readyz")
    assert reply.status == 503
    assert reply.content_type == "application/json"
    body = json.loads(reply.body)
    assert body["ready"] is False
    assert body["not_ready"] == ["engine_loaded", "engine_warmed", "stages"]

    daemon.checks.update(engine_loaded=True, engine_warmed=True)
    body = json.loads(_get(server, "/readyz").body)
    assert body["not_ready"] == ["stages"]

    daemon.checks["stages"] = True
    reply = _get(server, "/readyz")
    assert reply.status == 200
    assert json.loads(reply.body) == {
        "ready": True,
        "not_ready": [],
        "checks": {"engine_loaded": True, "engine_warmed": True, "stages": True},
    }

    daemon.checks["stages"] = False  # a stage died: not ready until it is back
    assert _get(server, "/readyz").status == 503


def test_failing_callables_give_answers_not_hangs(daemon: FakeDaemon) -> None:
    def broken() -> bytes:
        raise OSError("metrics directory is gone")

    def broken_ready() -> Mapping[str, bool]:
        raise RuntimeError("no engine")

    with HealthServer(render=broken, ready=broken_ready, alive=lambda: True, port=0) as server:
        reply = _get(server, "/metrics")
        assert reply.status == 500
        assert b"metrics directory is gone" in reply.body
        reply = _get(server, "/readyz")
        assert reply.status == 503
        assert json.loads(reply.body) == {
            "ready": False,
            "error": "readiness check failed: no engine",
        }


def test_unknown_paths_are_404(server: HealthServer) -> None:
    for path in ("/", "/metrics/", "/health", "/../etc/passwd"):
        assert _get(server, path).status == 404, path


def test_head_has_no_body(server: HealthServer) -> None:
    reply = _get(server, "/healthz", method="HEAD")
    assert (reply.status, reply.body) == (200, b"")


def test_close_releases_the_port(daemon: FakeDaemon) -> None:
    server = HealthServer(lambda: b"", daemon.ready, lambda: True, port=0).start()
    port = server.port
    assert _get(server, "/healthz").status == 200
    server.close()
    server.close()  # twice is fine
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


def test_a_taken_port_is_a_clear_error(server: HealthServer, daemon: FakeDaemon) -> None:
    second = HealthServer(lambda: b"", daemon.ready, lambda: True, port=server.port)
    with pytest.raises(HealthServerError, match=f"127.0.0.1:{server.port}.*health port"):
        second.start()


def test_heartbeat() -> None:
    now = [0.0]
    heartbeat = Heartbeat(timeout=5.0, clock=lambda: now[0])
    assert heartbeat()
    now[0] = 5.0
    assert heartbeat()
    now[0] = 5.1
    assert not heartbeat()
    heartbeat.beat()
    assert heartbeat() and heartbeat.age() == 0.0
