"""Helpers for the end-to-end daemon tests: a config on free loopback ports, the daemon as a
real subprocess (`defectd run`), a pushing camera and a subscriber."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml
import zmq

from defectd.daemon.events import decode_message
from defectd.daemon.protocol import FrameHeader, encode_frame
from defectd.daemon.tools.loopback import LoopbackPorts

REPO = Path(__file__).resolve().parents[2]
HEIGHT, WIDTH = 256, 1600


Ports = LoopbackPorts  # the demo's port set: cameras, events, HTTP


def write_config(path: Path, ports: Ports, **sections: dict[str, Any]) -> Path:
    """A daemon config with two pushing cameras on one PULL socket; `sections` override."""
    config: dict[str, Any] = {
        "line": {"name": "line1"},
        "cameras": [
            {
                "id": cam,
                "endpoint": ports.camera_endpoint,
                "mode": "bind",
                "width": WIDTH,
                "height": HEIGHT,
            }
            for cam in ("cam0", "cam1")
        ],
        "engine": {"backend": "null", "max_batch": 4},
        "slots": {"count": 16},
        "batching": {"max_wait_ms": 10.0, "policy": "block"},
        "publish": {"bind": ports.publish_endpoint, "status_interval_s": 0.2},
        "metrics": {"bind": f"127.0.0.1:{ports.http}"},
        "shutdown": {"drain_timeout_s": 10.0},
        "restart": {"backoff_initial_s": 0.2, "backoff_max_s": 1.0},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    path.write_text(yaml.safe_dump(config))
    return path


class Daemon:
    """`python -m defectd.daemon.cli run --config FILE` with its stderr in a file."""

    def __init__(
        self, config: Path, ports: Ports, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.ports = ports
        self.log = log
        self._log_file = log.open("w")
        environ = {**os.environ, "PYTHONPATH": str(REPO)}
        for name in ("NOTIFY_SOCKET", "PROMETHEUS_MULTIPROC_DIR", "WATCHDOG_USEC", "WATCHDOG_PID"):
            environ.pop(name, None)
        environ.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "defectd.daemon.cli", "run", "--config", str(config)],
            cwd=REPO,
            env=environ,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def http(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.ports.http}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return int(answer.status), answer.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited early:\n{self.log.read_text()}")
            try:
                if self.http("/readyz")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready in {timeout} s:\n{self.log.read_text()}")

    def children(self) -> dict[str, int]:
        """The stage processes, by name (``defectd-<stage>`` in /proc/PID/comm)."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.process.pid and comm.startswith("defectd-"):
                found[comm.removeprefix("defectd-")] = int(entry.name)
        return found

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self._log_file.close()


@contextmanager
def running(
    config: Path, ports: Ports, log: Path, env: dict[str, str] | None = None
) -> Iterator[Daemon]:
    daemon = Daemon(config, ports, log, env)
    try:
        yield daemon
    finally:
        daemon.kill()


class Camera:
    """A PUSH socket connected to the daemon's PULL, sending `encode_frame` messages."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> None:
        self.socket = context.socket(zmq.PUSH)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.connect(endpoint)

    def send(self, camera: str, seq: int, image: np.ndarray | None = None, **extra: Any) -> None:
        pixels = np.zeros((HEIGHT, WIDTH), np.uint8) if image is None else image
        header = FrameHeader(
            camera_id=camera,
            seq=seq,
            capture_ns=time.time_ns(),
            encoding="mono8",
            width=WIDTH,
            height=HEIGHT,
            **extra,
        )
        self.socket.send_multipart(encode_frame(header, pixels.tobytes(), with_topic=False))

    def send_raw(self, parts: list[bytes]) -> None:
        self.socket.send_multipart(parts)


class Subscriber:
    """A SUB socket on the daemon's events; `collect` gathers decoded messages."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> None:
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def pump(self, wait_ms: int = 50) -> None:
        if not self.socket.poll(wait_ms):
            return
        while True:
            try:
                parts = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.messages.append((parts[0].decode(), decode_message(parts)))

    def until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if done():
                return
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [payload for topic, payload in self.messages if topic.split(".")[0] == kind]

    def last_status(self) -> dict[str, Any] | None:
        statuses = self.of("status")
        return statuses[-1] if statuses else None

    def wait_subscribed(self, timeout: float = 10.0) -> None:
        """Until a status heartbeat arrives: the subscription is in place."""
        self.until(lambda: self.last_status() is not None, timeout, "a status heartbeat")


def summaries(subscriber: Subscriber) -> list[tuple[str, int]]:
    return [(p["camera_id"], p["seq"]) for p in subscriber.of("frame")]


def dump(payload: object) -> str:
    return json.dumps(payload, indent=1)
