"""What every stage process shares: its spec, its start-up, and its reports to the supervisor.

Control traffic between processes goes over ZeroMQ ``ipc://`` sockets in the run directory,
not `multiprocessing` queues: a queue's reader holds a process-shared lock while it waits, so
a reader SIGKILLed there leaves the queue locked for its replacement, and a writer killed mid
message corrupts the pipe. ZeroMQ messages are atomic and a restarted peer just reconnects.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import zmq

from defectd.daemon.accounting import FrameEvent
from defectd.daemon.config import DaemonConfig
from defectd.daemon.control import Reconfigure, SwapOutcome
from defectd.daemon.logs import configure_logging
from defectd.daemon.slots import SlotPoolSpec
from defectd.engines.engine import EngineInfo

log = logging.getLogger(__name__)

# Kinds that run one process (no index in their names).
SINGLE_KINDS = ("inference", "publisher", "store", "web", "mqtt", "opcua")
STAGE_KINDS = (
    "receiver",
    "inference",
    "postprocess",
    "publisher",
    "store",
    "web",
    "mqtt",
    "opcua",
)
REPORT_INTERVAL_S = 0.1  # a stage's events reach the supervisor at most this late
PROGRESS_INTERVAL_S = 0.25  # an idle stage still reports this often: its loop turns
_MAX_EVENTS = 512  # events per report
BUSY_POLL_MS = 10  # with events pending, a stage that found nothing to do for this long flushes


@dataclass(frozen=True)
class RunPaths:
    """The run directory's ipc endpoints (one directory per daemon run, 0700)."""

    run_dir: str

    @property
    def reports(self) -> str:
        """Stages PUSH `Report`s; the supervisor binds."""
        return f"ipc://{self.run_dir}/reports"

    @property
    def doorbell(self) -> str:
        """Receivers ring it after a commit; the inference process binds."""
        return f"ipc://{self.run_dir}/doorbell"

    def worker(self, index: int) -> str:
        """The inference process PUSHes frames to post-processing worker `index`, which binds."""
        return f"ipc://{self.run_dir}/post-{index}"

    @property
    def publisher(self) -> str:
        """Workers PUSH results and the supervisor status; the publisher binds."""
        return f"ipc://{self.run_dir}/publish"

    @property
    def events(self) -> str:
        """The publisher's internal PUB of every event (outputs enabled); outputs SUB."""
        return f"ipc://{self.run_dir}/events"

    @property
    def control(self) -> str:
        """The supervisor PUBlishes `Reconfigure` on reload; receivers, inference and
        post-processing SUB."""
        return f"ipc://{self.run_dir}/control"

    @property
    def store(self) -> str:
        """The publisher PUSHes what it published (``store.enabled``); the store stage binds."""
        return f"ipc://{self.run_dir}/store"


@dataclass(frozen=True)
class StageSpec:
    """Everything a stage process needs, as plain picklable values."""

    kind: str  # one of STAGE_KINDS
    index: int  # receivers and post-processing workers: which one; else 0
    config: DaemonConfig
    pool: SlotPoolSpec
    paths: RunPaths
    log_level: str = "info"
    log_format: str = "text"
    generation: int = 0  # of `config`: reloads since start
    assignment: tuple[tuple[str, int], ...] = ()  # socket endpoint → receiver; () round-robin

    @property
    def name(self) -> str:
        """``receiver-0``, ``inference``, ``postprocess-1``, ``publisher``, ``store``, ..."""
        return self.kind if self.kind in SINGLE_KINDS else f"{self.kind}-{self.index}"

    @property
    def short_name(self) -> str:
        """The process name in ``ps``/``top`` (15 bytes at most): ``defectd-recv0``,
        ``defectd-infer``, ``defectd-post1``, ``defectd-pub``."""
        short = {
            "receiver": "recv",
            "inference": "infer",
            "postprocess": "post",
            "publisher": "pub",
        }
        base = short.get(self.kind, self.kind)
        suffix = "" if self.kind in SINGLE_KINDS else str(self.index)
        return f"defectd-{base}{suffix}"[:15]


@dataclass(frozen=True)
class Report:
    """What a stage tells the supervisor (small, picklable); one every `REPORT_INTERVAL_S`
    while there is news, at least every `PROGRESS_INTERVAL_S` as proof of progress."""

    stage: str
    pid: int
    frames: tuple[FrameEvent, ...] = ()
    rejected: tuple[tuple[str | None, str, int], ...] = ()  # (camera, reason, count)
    lost: int = 0  # frames missing in the cameras' sequence numbers
    engine: EngineInfo | None = None  # inference: the engine is open and warm
    final: bool = False  # the stage is exiting cleanly
    generation: int = 0  # the config generation the stage runs
    swap: SwapOutcome | None = None  # inference: how a model swap ended


class Reporter:
    """Collects a stage's events and sends them to the supervisor in batches."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], spec: StageSpec) -> None:
        self._stage = spec.name
        self._pid = os.getpid()
        self._socket = context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.SNDHWM, 100_000)
        self._socket.setsockopt(zmq.LINGER, 2000)  # final reports must get out at exit
        self._socket.connect(spec.paths.reports)
        self._frames: list[FrameEvent] = []
        self._rejected: Counter[tuple[str | None, str]] = Counter()
        self._lost = 0
        self._engine: EngineInfo | None = None
        self._swap: SwapOutcome | None = None
        self._last = 0.0
        self.generation = spec.generation  # set by the stage as it applies a `Reconfigure`

    def frame(self, event: FrameEvent) -> None:
        self._frames.append(event)

    def rejected(self, camera: str | None, reason: str) -> None:
        self._rejected[(camera, reason)] += 1

    def lost(self, count: int) -> None:
        self._lost += count

    def ready(self, info: EngineInfo) -> None:
        self._engine = info
        self.flush()

    def swapped(self, outcome: SwapOutcome, info: EngineInfo | None) -> None:
        """A model swap ended (`info`: the new engine, when it serves now)."""
        self._swap = outcome
        self._engine = info
        self.flush()

    def applied(self, generation: int) -> None:
        """The stage runs config `generation` from now on; the supervisor hears at once."""
        self.generation = generation
        self.flush()

    @property
    def pending(self) -> bool:
        """Whether events wait to be sent (a stage then polls its sockets briefly, so they go
        out as soon as it is idle: the supervisor's account lags a burst by milliseconds)."""
        return bool(self._frames or self._rejected or self._lost)

    def wait_ms(self, idle_ms: int) -> int:
        """How long a stage's poll may block: `idle_ms`, or `BUSY_POLL_MS` with events pending."""
        return min(idle_ms, BUSY_POLL_MS) if self.pending else idle_ms

    def maybe_flush(self, now: float | None = None) -> None:
        """Send what is pending when it is due (call every loop turn)."""
        at = time.monotonic() if now is None else now
        news = self._frames or self._rejected or self._lost
        due = PROGRESS_INTERVAL_S if not news else REPORT_INTERVAL_S
        if at - self._last >= due or len(self._frames) >= _MAX_EVENTS:
            self.flush(now=at)

    def flush_if_pending(self) -> None:
        """Send pending events now (the stage is idle)."""
        if self.pending:
            self.flush()

    def flush(self, final: bool = False, now: float | None = None) -> None:
        """Send everything pending now (`final`: the stage is exiting)."""
        report = Report(
            stage=self._stage,
            pid=self._pid,
            frames=tuple(self._frames),
            rejected=tuple((c, r, n) for (c, r), n in self._rejected.items()),
            lost=self._lost,
            engine=self._engine,
            final=final,
            generation=self.generation,
            swap=self._swap,
        )
        self._frames, self._lost, self._engine, self._swap = [], 0, None, None
        self._rejected.clear()
        self._last = time.monotonic() if now is None else now
        self._socket.send_pyobj(report)

    def close(self) -> None:
        self._socket.close()


class StopFlag:
    """SIGTERM asks a stage to stop (the supervisor sends it); SIGINT is ignored, because a
    Ctrl-C in a terminal reaches the whole process group and the supervisor decides."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _prctl(option: int, value: int | bytes) -> None:
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    with contextlib.suppress(OSError, AttributeError):  # not Linux: these are niceties
        ctypes.CDLL(libc_name, use_errno=True).prctl(option, value, 0, 0, 0)


_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


def start_stage(spec: StageSpec) -> StopFlag:
    """Common start of a stage process: its name in ``ps``/``top`` (`StageSpec.short_name`),
    SIGKILL should the supervisor die, signals, logging."""
    _prctl(_PR_SET_NAME, spec.short_name.encode())
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    stop = StopFlag()
    configure_logging(spec.log_level, spec.log_format)
    return stop


def serve(stop: StopFlag, reporter: Reporter, drain: Callable[[int], int], poll_ms: int) -> None:
    """A queue-fed stage's main loop: `drain(wait_ms)` handles what arrived and returns how
    many; after SIGTERM it drains what is left, so frames in flight are finished, not lost."""
    while not stop.requested:
        if not drain(reporter.wait_ms(poll_ms)):
            reporter.flush_if_pending()
        reporter.maybe_flush()
    while drain(0):
        pass


class ControlInbox:
    """A stage's end of the supervisor's control PUB: the newest `Reconfigure` not yet seen.

    The supervisor sends the newest again every few seconds, so a stage that (re)started
    just as it was first sent still gets it; older and repeated generations are ignored.
    """

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], spec: StageSpec) -> None:
        self._socket = context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(spec.paths.control)
        self.generation = spec.generation

    def poll(self) -> Reconfigure | None:
        """The newest `Reconfigure` of a later generation that arrived, else None."""
        newest = None
        while True:
            try:
                message = self._socket.recv_pyobj(zmq.NOBLOCK)
            except zmq.Again:
                break
            if isinstance(message, Reconfigure) and message.generation > self.generation:
                newest = message
        if newest is not None:
            self.generation = newest.generation
        return newest

    def close(self) -> None:
        self._socket.close(linger=0)


def bind_ipc(socket: zmq.Socket[bytes], endpoint: str) -> None:
    """Bind an ``ipc://`` endpoint, removing the file a dead predecessor left."""
    path = Path(endpoint.removeprefix("ipc://"))
    path.unlink(missing_ok=True)
    socket.bind(endpoint)
