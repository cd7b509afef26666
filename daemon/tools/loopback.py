"""A whole line on loopback: `defectd run` as a real subprocess, plus a subscriber thread.

Shared by `defectd demo` (daemon/demo.py) and `defectd bench pipeline`
(daemon/benchmarks/pipeline.py): both write a daemon config on free loopback ports, start
the real daemon (`python -m defectd.daemon.cli run`), wait for ``/readyz``, listen to what it
publishes and stop it with SIGTERM (it drains frames in flight and exits 0).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml
import zmq

from defectd.daemon.clients.subscriber import GapDetector
from defectd.daemon.events import MessageError, decode_message
from defectd.daemon.topics import DEFECT, FRAME, STATUS, kind_of

# Variables a parent's service manager or metrics setup may have set: the child daemon must
# not ping systemd or share a metrics directory with anything else.
_INHERITED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "PROMETHEUS_MULTIPROC_DIR")
_REPO = Path(__file__).resolve().parents[1]


class LoopbackError(RuntimeError):
    """The daemon did not start, or exited while it was needed; the message names its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LoopbackPorts:
    """The daemon's ports: cameras (simulator side), events (publish) and HTTP."""

    camera: int = field(default_factory=free_port)
    publish: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)

    @property
    def camera_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.camera}"

    @property
    def publish_endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.publish}"


def line_config(
    ports: LoopbackPorts,
    cameras: tuple[str, ...],
    *,
    push: bool,
    engine: Mapping[str, Any],
    width: int = 1600,
    height: int = 256,
    line: str = "line1",
    sections: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A daemon config (as a mapping) for `cameras` on one loopback endpoint.

    `push`: the daemon binds a PULL socket the simulator's PUSH connects to (back-pressure,
    nothing lost); otherwise the simulator binds PUB and the daemon's SUB connects. `sections`
    are merged over the defaults, key by key.
    """
    mode = "bind" if push else "connect"
    config: dict[str, Any] = {
        "line": {"name": line},
        "cameras": [
            {
                "id": camera,
                "endpoint": ports.camera_endpoint,
                "mode": mode,
                "width": width,
                "height": height,
            }
            for camera in cameras
        ],
        "engine": dict(engine),
        "publish": {"bind": ports.publish_endpoint, "status_interval_s": 0.5},
        "metrics": {"bind": f"127.0.0.1:{ports.http}"},
        "shutdown": {"drain_timeout_s": 20.0},
    }
    for name, values in (sections or {}).items():
        config[name] = {**config.get(name, {}), **values}
    return config


class DaemonProcess:
    """`defectd run --config FILE` as a child process, stdout and stderr into `log`.

    The child gets a session of its own, so a Ctrl-C on the terminal reaches only the parent,
    which then stops the daemon in order (`stop`: SIGTERM, drain, exit). Use as a context
    manager: leaving it stops the daemon, and kills it if it does not stop in time.
    """

    def __init__(self, config: Mapping[str, Any], workdir: Path, ports: LoopbackPorts) -> None:
        self.ports = ports
        self.config_path = workdir / "defectd.yaml"
        self.log_path = workdir / "daemon.log"
        self.config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> DaemonProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        environ = {k: v for k, v in os.environ.items() if k not in _INHERITED}
        # The repository on the path: the demo also runs from a checkout without an install.
        environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO), environ.get("PYTHONPATH", "")) if p
        )
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "defectd.daemon.cli", "run", "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environ,
            start_new_session=True,
        )

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def http_status(self, path: str) -> int | None:
        """The HTTP status of GET `path`, None when nothing answers yet."""
        url = f"http://127.0.0.1:{self.ports.http}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def wait_ready(self, timeout_s: float, stop: threading.Event | None = None) -> bool:
        """Until ``/readyz`` answers 200 (True), or `stop` is set (False); LoopbackError when
        the daemon exits or `timeout_s` passes first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                return False
            if self.returncode is not None:
                raise LoopbackError(
                    f"the daemon exited with status {self.returncode} before it was ready; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            if self.http_status("/readyz") == 200:
                return True
            time.sleep(0.1)
        raise LoopbackError(f"the daemon was not ready after {timeout_s:g} s; see {self.log_path}")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (the daemon drains and exits), SIGKILL after `timeout_s`; the exit status."""
        process = self.process
        if process is None:
            return None
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
                except BaseException:  # a second Ctrl-C while it drains: do not wait
                    process.kill()
                    process.wait(5)
                    raise
            return process.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Collected:
    """What a `Listener` gathered; read it under `Listener.lock`."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    defects: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] | None = None
    statuses: int = 0
    unreadable: int = 0
    first_status_at: float | None = None  # monotonic, when the first heartbeat arrived


class Listener:
    """A SUB socket on the daemon's events, read by a thread of its own.

    `topics` are SUB prefixes (the daemon's PUB filters, so what is not subscribed costs
    nothing); `on_frame` and `on_status` are called for each frame summary and heartbeat
    (from the listener's thread).
    Frame summaries and defect events are kept only when `keep` says so (the pipeline bench
    counts at thousands per second and needs only the heartbeats).
    """

    def __init__(
        self,
        endpoint: str,
        topics: tuple[str, ...] = ("",),
        keep: bool = True,
        on_frame: Callable[[dict[str, Any]], None] | None = None,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.topics = topics
        self.keep = keep
        self.on_frame = on_frame
        self.on_status = on_status
        self.lock = threading.Lock()
        self.collected = Collected()
        self.gaps = GapDetector()
        self.frame_count = 0
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="listener", daemon=True)
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._error: BaseException | None = None

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Until the first status heartbeat arrived (so the subscription is in place)."""
        return self._subscribed.wait(timeout_s)

    def snapshot_status(self) -> dict[str, Any] | None:
        with self.lock:
            return self.collected.status

    def close(self) -> None:
        """Stop the thread and close the socket (again: nothing); raise what the thread
        raised."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        if not self._context.closed:
            self._context.term()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        sock = self._context.socket(zmq.SUB)
        try:
            sock.setsockopt(zmq.RCVHWM, 1_000_000)  # a subscriber that falls behind would miss
            sock.setsockopt(zmq.LINGER, 0)
            for topic in (*self.topics, STATUS):  # heartbeats always: they say it is subscribed
                sock.setsockopt(zmq.SUBSCRIBE, topic.encode("ascii"))
            sock.connect(self.endpoint)
            while not self._stop.is_set():
                if not sock.poll(100, zmq.POLLIN):
                    continue
                while True:
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._take(parts)
        except BaseException as exc:  # handed to the caller in `close`
            self._error = exc
        finally:
            sock.close(linger=0)

    def _take(self, parts: list[bytes]) -> None:
        try:
            payload = decode_message(parts)
        except MessageError:
            with self.lock:
                self.collected.unreadable += 1
            return
        topic = parts[0].decode("ascii")
        kind = kind_of(topic)
        with self.lock:
            self.gaps.observe(topic, payload)
            if kind == STATUS:
                self.collected.status = payload
                self.collected.statuses += 1
                if self.collected.first_status_at is None:
                    self.collected.first_status_at = time.monotonic()
                    self._subscribed.set()
            elif kind == FRAME:
                self.frame_count += 1
                if self.keep:
                    self.collected.frames.append(payload)
            elif kind == DEFECT and self.keep:
                self.collected.defects.append(payload)
        if kind == FRAME and self.on_frame is not None:
            self.on_frame(payload)
        elif kind == STATUS and self.on_status is not None:
            self.on_status(payload)


def settled(status: Mapping[str, Any] | None, sent: int) -> bool:
    """Whether a heartbeat shows every one of `sent` frames done: received or lost in
    transport, and nothing received still in flight."""
    if status is None:
        return False
    frames = status["frames"]
    dropped = sum(int(n) for n in frames["dropped"].values())
    received, processed = int(frames["received"]), int(frames["processed"])
    return received == processed + dropped and received + int(frames["lost"]) >= sent
