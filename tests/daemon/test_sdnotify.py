"""systemd notify: real AF_UNIX datagram sockets (a path and an abstract name), the watchdog
interval from the environment, and the watchdog gate on a fake clock."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from defectd.daemon.sdnotify import Notifier, WatchdogGate, watchdog_interval

MAX_SUN_PATH = 100  # sockaddr_un.sun_path is 108 bytes; tmp_path can be longer


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _receive(sock: socket.socket) -> list[str]:
    """Every datagram waiting on `sock`."""
    messages = []
    sock.setblocking(False)
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    if len(str(tmp_path)) < MAX_SUN_PATH - 10:
        yield tmp_path / "notify"
        return
    with tempfile.TemporaryDirectory(prefix="sdn") as short:
        yield Path(short) / "notify"


@pytest.fixture
def listener(socket_path: Path) -> Iterator[socket.socket]:
    """The service manager's end: a datagram socket at `socket_path`."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(socket_path))
    yield sock
    sock.close()


def test_messages_arrive_on_a_socket_path(socket_path: Path, listener: socket.socket) -> None:
    with Notifier.from_env({"NOTIFY_SOCKET": str(socket_path)}) as notifier:
        assert notifier.enabled
        assert notifier.ready("inspecting 2 cameras")
        assert notifier.status("engine tensorrt fp16")
        assert notifier.watchdog()
        assert notifier.extend_timeout(30)
        assert notifier.stopping()
    assert _receive(listener) == [
        "READY=1\nSTATUS=inspecting 2 cameras",
        "STATUS=engine tensorrt fp16",
        "WATCHDOG=1",
        "EXTEND_TIMEOUT_USEC=30000000",
        "STOPPING=1",
    ]


def test_messages_arrive_on_an_abstract_socket() -> None:
    name = f"defectd-test-{os.getpid()}-{os.urandom(4).hex()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert notifier.address == "\0" + name
        assert notifier.ready()
        notifier.close()
        assert _receive(sock) == ["READY=1"]


def test_status_text_cannot_inject_assignments(socket_path: Path, listener: socket.socket) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(socket_path)})
    notifier.status("camera top silent\nREADY=1")
    notifier.close()
    assert _receive(listener) == ["STATUS=camera top silent READY=1"]
    with pytest.raises(ValueError, match="KEY=value"):
        notifier.notify("READY=1\nWATCHDOG=1")


def test_without_systemd_nothing_is_sent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="defectd.daemon.sdnotify")
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    said = [r for r in caplog.records if "not under systemd" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.DEBUG


def test_unsupported_address_disables_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert "vsock:2:1234" in caplog.text


def test_a_vanished_socket_is_logged_not_raised(
    socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(socket_path)})  # nobody listens
    assert not notifier.watchdog()
    assert not notifier.watchdog()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # not once per ping
    notifier.close()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "4242"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "4243"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ, pid=4242) == expected


def test_watchdog_pid_defaults_to_this_process() -> None:
    environ = {"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(environ) == 1.5


def test_gate_pings_at_most_once_per_interval(socket_path: Path, listener: socket.socket) -> None:
    clock = FakeClock()
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(socket_path)})
    gate = WatchdogGate(notifier, interval=5.0, clock=clock)
    gate.register("inference", deadline=10.0)
    assert gate.maybe_ping()
    clock.now += 4.9
    gate.progress("inference")
    assert not gate.maybe_ping()  # not due yet
    clock.now += 0.1
    assert gate.maybe_ping()
    assert _receive(listener) == ["WATCHDOG=1", "WATCHDOG=1"]


def test_gate_withholds_pings_while_a_stage_is_stalled(
    socket_path: Path, listener: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(socket_path)})
    gate = WatchdogGate(notifier, interval=1.0, clock=clock)
    gate.register("receiver-top", deadline=3.0)
    gate.register("inference", deadline=3.0)
    assert gate.maybe_ping()

    clock.now += 2.0
    gate.progress("receiver-top")
    clock.now += 2.0  # inference last seen 4 s ago, receiver 2 s ago
    assert gate.stalled() == ("inference",)
    assert not gate.maybe_ping()
    assert not gate.maybe_ping(clock.now + 1.0)
    assert "inference 4.0 s" in caplog.text

    gate.progress("inference")
    assert gate.maybe_ping()
    assert _receive(listener) == [
        "WATCHDOG=1",
        "STATUS=stalled: inference",
        "STATUS=all stages progressing",
        "WATCHDOG=1",
    ]


def test_a_stage_that_never_reports_stalls_after_its_deadline() -> None:
    clock = FakeClock()
    gate = WatchdogGate(Notifier(None), interval=1.0, clock=clock)
    gate.register("publisher", deadline=2.0)
    assert gate.stalled() == ()
    clock.now += 2.5
    assert gate.stalled() == ("publisher",)
    gate.unregister("publisher")
    assert gate.stalled() == ()


def test_gate_without_watchdog_never_pings(socket_path: Path, listener: socket.socket) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(socket_path)})
    gate = WatchdogGate.from_env(notifier, environ={}, clock=FakeClock())
    gate.register("inference", deadline=1.0)
    assert gate.interval is None
    assert not gate.maybe_ping()
    assert _receive(listener) == []


def test_gate_rejects_unknown_stages_and_bad_deadlines() -> None:
    gate = WatchdogGate(Notifier(None), interval=1.0, clock=FakeClock())
    gate.register("inference", deadline=1.0)
    with pytest.raises(KeyError, match="inference"):
        gate.progress("infrence")
    with pytest.raises(ValueError, match="positive"):
        gate.register("publisher", deadline=0)
    with pytest.raises(ValueError, match="positive"):
        WatchdogGate(Notifier(None), interval=0.0)
