"""The systemd notify protocol, without libsystemd: readiness, status, watchdog, stopping.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``, an AF_UNIX datagram socket (a path,
or an abstract name written with a leading ``@``). A message is newline-separated
``KEY=value`` assignments: ``READY=1`` once start-up is done, ``STATUS=...`` for
``systemctl status``, ``WATCHDOG=1`` keep-alives, ``STOPPING=1`` when shutting down,
``EXTEND_TIMEOUT_USEC=...`` while a long start (a TensorRT engine build) is still progressing.

With ``WatchdogSec=`` set, systemd also passes ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``, the
process that must ping) and restarts the service when no ``WATCHDOG=1`` arrives in time.
`WatchdogGate` pings only while every stage of the pipeline shows progress, so a wedged
stage (a hung CUDA call, a deadlocked worker) gets the whole service restarted instead of
being hidden by a supervisor that is itself fine.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op, logged at debug level once.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to the service manager; a no-op without an address.

    Failures are logged, never raised: the daemon keeps inspecting even if systemd cannot be
    told about it.
    """

    def __init__(self, address: str | None) -> None:
        self._address = address  # abstract names already start with "\0"
        self._socket: socket.socket | None = None
        self._failed = False
        self._said_disabled = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET``; disabled when unset or not an AF_UNIX address."""
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET", "")
        if not value:
            return cls(None)
        if value.startswith("@"):
            return cls("\0" + value[1:])
        if value.startswith("/"):
            return cls(value)
        # e.g. "vsock:2:1234" (systemd in a VM): not something a plain AF_UNIX socket reaches.
        log.warning(
            "NOTIFY_SOCKET=%r is not a socket path or @abstract name: readiness and watchdog "
            "notifications are off (run defectd as a plain Type=notify service)",
            value,
        )
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def address(self) -> str | None:
        """The socket address (abstract names start with a NUL byte), None when disabled."""
        return self._address

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments in one datagram; True when it was sent."""
        for item in assignments:
            if "=" not in item or "\n" in item:
                raise ValueError(f"notify takes single-line KEY=value assignments, got {item!r}")
        if self._address is None:
            if not self._said_disabled:
                log.debug("not under systemd (no NOTIFY_SOCKET): notifications are not sent")
                self._said_disabled = True
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            self._socket.sendto("\n".join(assignments).encode(), self._address)
        except OSError as error:
            # Once at warning level: the watchdog pings every few seconds and must not flood
            # the journal while systemd is away (a daemon-reexec, say).
            level = logging.DEBUG if self._failed else logging.WARNING
            log.log(level, "could not notify systemd at %r: %s", self._address, error)
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up is done: systemd starts the units that wait for defectd."""
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        return self.notify(*_status(text))

    def watchdog(self) -> bool:
        """A keep-alive for ``WatchdogSec=`` (prefer `WatchdogGate.maybe_ping`)."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun."""
        return self.notify("STOPPING=1", *_status(status))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more before the start (or stop) timeout fires; repeat to go on."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(int(seconds * 1e6), 1)}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _status(text: str | None) -> tuple[str, ...]:
    # A newline would start a new assignment: status text must not inject READY=1 and co.
    return () if text is None else ("STATUS=" + " ".join(text.splitlines()),)


def watchdog_interval(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, as systemd advises.

    None when the watchdog is off: no ``$WATCHDOG_USEC``, or ``$WATCHDOG_PID`` names another
    process (the variables were inherited by a child).
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner:
        if not owner.isdigit():
            log.warning("WATCHDOG_PID=%r is not a pid: watchdog pings are off", owner)
            return None
        if int(owner) != (os.getpid() if pid is None else pid):
            return None
    if not usec.isdigit() or int(usec) == 0:
        log.warning("WATCHDOG_USEC=%r is not a positive number: watchdog pings are off", usec)
        return None
    return int(usec) / 2e6


@dataclass
class _Stage:
    deadline: float  # seconds without progress before the stage counts as stalled
    last: float  # clock time of its latest progress (or of its registration)


class WatchdogGate:
    """Pings the systemd watchdog only while every registered stage shows progress.

    Stages are the pipeline's loops (receivers, inference, post-processing, publisher). Each
    reports progress every time its loop turns, idle or not (a line that stops is not a
    fault), through the supervisor, which calls `progress`. The supervisor's own loop calls
    `maybe_ping` every iteration; it sends ``WATCHDOG=1`` at most once per `interval` and not
    at all while a stage is past its deadline, so systemd restarts a wedged daemon.
    """

    def __init__(
        self,
        notifier: Notifier,
        interval: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval is not None and interval <= 0:
            raise ValueError(f"watchdog interval must be positive seconds, got {interval}")
        self._notifier = notifier
        self._interval = interval
        self._clock = clock
        self._stages: dict[str, _Stage] = {}
        self._last_ping: float | None = None
        self._stalled: tuple[str, ...] = ()

    @classmethod
    def from_env(
        cls,
        notifier: Notifier,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> WatchdogGate:
        """A gate with the interval systemd asked for (none: `maybe_ping` never pings)."""
        return cls(notifier, watchdog_interval(environ), clock)

    @property
    def interval(self) -> float | None:
        return self._interval

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self._stages)

    def register(self, stage: str, deadline: float) -> None:
        """Watch `stage`: it must report progress at least every `deadline` seconds.

        The deadline starts now, so a stage that never starts stops the pings too.
        """
        if deadline <= 0:
            raise ValueError(f"stage {stage!r}: deadline must be positive seconds, got {deadline}")
        self._stages[stage] = _Stage(deadline, self._clock())

    def unregister(self, stage: str) -> None:
        """Stop watching `stage` (it was removed on purpose, not lost)."""
        self._stages.pop(stage, None)

    def progress(self, stage: str, now: float | None = None) -> None:
        """`stage` made progress (its loop turned)."""
        state = self._stages.get(stage)
        if state is None:
            raise KeyError(f"unknown stage {stage!r}; registered: {', '.join(self._stages)}")
        state.last = self._clock() if now is None else now

    def stalled(self, now: float | None = None) -> tuple[str, ...]:
        """Stages past their deadline, in registration order."""
        at = self._clock() if now is None else now
        return tuple(
            name for name, state in self._stages.items() if at - state.last > state.deadline
        )

    def maybe_ping(self, now: float | None = None) -> bool:
        """Send ``WATCHDOG=1`` if one is due and no stage is stalled; True when sent."""
        at = self._clock() if now is None else now
        stalled = self.stalled(at)
        if stalled != self._stalled:
            self._report(stalled, at)
            self._stalled = stalled
        if self._interval is None or stalled:
            return False
        if self._last_ping is not None and at - self._last_ping < self._interval:
            return False
        self._last_ping = at
        return self._notifier.watchdog()

    def _report(self, stalled: tuple[str, ...], at: float) -> None:
        if stalled:
            ages = ", ".join(f"{name} {at - self._stages[name].last:.1f} s" for name in stalled)
            log.warning("no progress from %s: watchdog pings withheld", ages)
            self._notifier.status(f"stalled: {', '.join(stalled)}")
        else:
            log.info("all stages progressing again: watchdog pings resumed")
            self._notifier.status("all stages progressing")
