"""The supervisor: the daemon's main process (docs/daemon.md).

It creates what the stages share (the slot pool, the run directory of ipc sockets, the
metrics directory), serves ``/metrics`` ``/healthz`` ``/readyz``, starts the stage
processes (``spawn``) and watches them:

- every stage reports to it over ZeroMQ (`daemon.stages.common.Report`): frame events feed
  the `FrameAccount`, so received = processed + dropped{reason} + in flight at all times;
- a stage that dies is joined, its slots reclaimed and counted as dropped{worker_crash}, and
  started again after a back-off (``restart.*``); receivers keep running while the inference
  process restarts, and frames waiting READY in their slots survive the restart;
- ``/readyz`` and ``READY=1`` once the engine is warm and every stage runs; ``WATCHDOG=1``
  only while every stage shows progress; a status heartbeat goes to the publisher;
- SIGHUP or `defectd reload` (its control socket): the config file is read again and what
  changed applied without a restart (`daemon.reloader`; a model swap happens in the
  inference process, `daemon.stages.model_swap`);
- SIGTERM/SIGINT: receivers stop reading, frames in flight drain for up to
  ``shutdown.drain_timeout_s`` and are published, then the other stages stop and the daemon
  exits 0; what did not drain is counted dropped{shutdown}. A second signal exits at once.
  The shared memory is unlinked on every way out.

Longer than the project's usual 400 lines: it is one state machine (start, supervise, drain)
over the same children, slot pool, frame account and metrics; the stages, config, metrics
and health server it drives live in their own modules.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

import zmq

from defectd.daemon.accounting import AccountingError, FrameAccount
from defectd.daemon.config import (
    DaemonConfig,
    ModelCheck,
    check_model,
    config_warnings,
    parse_http_bind,
)
from defectd.daemon.control import control_endpoint
from defectd.daemon.events import FrameCounts, RateMeter, StatusEvent
from defectd.daemon.health import HealthServer, Heartbeat
from defectd.daemon.metrics import (
    Metrics,
    create_metrics,
    mark_process_dead,
    render,
)
from defectd.daemon.reloader import CONTROLLED, Reloader
from defectd.daemon.sdnotify import Notifier, WatchdogGate
from defectd.daemon.slots import FrameMeta, SlotPool, SlotState
from defectd.daemon.stages.common import STAGE_KINDS, Report, RunPaths, StageSpec, bind_ipc
from defectd.daemon.stages.inference import run_inference, worker_for
from defectd.daemon.stages.outputs import enabled_outputs, run_output
from defectd.daemon.stages.postprocess import run_postprocess
from defectd.daemon.stages.publisher import run_publisher
from defectd.daemon.stages.receiver import run_receiver
from defectd.daemon.stages.store import run_store
from defectd.engines.engine import EngineInfo
from defectd.engines.model_card import ModelCard

log = logging.getLogger(__name__)

TURN_MS = 50  # the supervisor loop's longest wait for a report
FRAME_TIMEOUT_S = 60.0  # a frame in flight this long was lost where no slot tracked it
STAGE_DEADLINE_S = 10.0  # watchdog: a stage silent this long is stalled
ENGINE_START_DEADLINE_S = 600.0  # watchdog: opening (building) and warming the engine
STOP_WAIT_S = 5.0  # how long a stage gets to exit after SIGTERM before SIGKILL
STABLE_S = 60.0  # a stage that ran this long starts its back-off afresh when it dies
SETTLE_S = 1.0  # drain: with every slot free, this long without a frame event means done
ENGINE_START_TRIES = 3  # inference deaths before its engine was ever ready: give up, exit 1
_ENTRY: dict[str, Callable[[StageSpec], None]] = {
    "receiver": run_receiver,
    "inference": run_inference,
    "postprocess": run_postprocess,
    "publisher": run_publisher,
    "store": run_store,
    "web": run_output,
    "mqtt": run_output,
    "opcua": run_output,
}


@dataclass
class _Child:
    spec: StageSpec
    process: BaseProcess | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    stopping: bool = False  # sent SIGTERM on purpose: its exit is no crash

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()


@dataclass
class _Totals:
    rejected: Counter[str] = field(default_factory=Counter)  # reason → messages
    lost: int = 0


class Supervisor:
    """Runs the daemon for `config` until a signal; `run` returns the exit status."""

    def __init__(
        self,
        config: DaemonConfig,
        metrics_dir: str,
        *,
        model: ModelCheck | None = None,
        log_level: str | None = None,
        log_format: str | None = None,
        notifier: Notifier | None = None,
        environ: Mapping[str, str] | None = None,
        config_path: Path | None = None,
    ) -> None:
        self._config = config
        self._config_path = config_path
        self._environ = environ
        self._reloader: Reloader | None = None
        self._reload_asked = False
        self._log_level = log_level or config.logging.level
        self._log_format = log_format or config.logging.format
        self._notifier = notifier or Notifier.from_env(environ)
        self._watchdog = WatchdogGate.from_env(self._notifier, environ)
        self._heartbeat = Heartbeat(timeout=10.0)
        self._account = FrameAccount()
        self._totals = _Totals()
        self._rate = RateMeter()
        self._children: list[_Child] = []
        self._engine: EngineInfo | None = None
        self._engine_failures = 0  # inference deaths in a row before its engine was ready
        self._failed: str | None = None  # why the daemon gives up (exit 1)
        self._context = multiprocessing.get_context("spawn")
        self._signals = 0
        self._announced_ready = False
        self._started = time.monotonic()
        self._cleanup: list[Callable[[], None]] = []
        self._pool: SlotPool | None = None
        self._metrics: Metrics | None = None
        self._metrics_dir = metrics_dir
        self._model = model

    # -- the whole run ---------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, supervise until SIGTERM/SIGINT, drain, stop; 0 on a clean stop."""
        config = self._config
        model = self._model or check_model(config)  # ConfigError before anything starts
        for warning in config_warnings(config):
            log.warning("%s", warning)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)
        zctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            metrics = self._setup_metrics(model.card.classes)
            run_dir = tempfile.mkdtemp(prefix="defectd-")
            self._cleanup.append(lambda: shutil.rmtree(run_dir, ignore_errors=True))
            paths = RunPaths(run_dir)
            reports = zctx.socket(zmq.PULL)
            reports.setsockopt(zmq.LINGER, 0)
            bind_ipc(reports, paths.reports)
            status = zctx.socket(zmq.PUSH)
            status.setsockopt(zmq.LINGER, 0)
            status.setsockopt(zmq.SNDHWM, 16)
            status.connect(paths.publisher)
            self._reloader = self._setup_control(zctx, paths, metrics, model.card)
            pool = SlotPool.create_groups("defectd", config.slot_groups, config.batching.policy)
            self._pool = pool
            self._cleanup.append(pool.unlink)
            bind = parse_http_bind(config.metrics.bind)
            health = HealthServer(
                render=lambda: render(self._metrics_dir),
                ready=self._ready_checks,
                alive=self._heartbeat,
                host=bind.host or "127.0.0.1",
                port=bind.port or 9108,
            ).start()
            self._cleanup.append(health.close)
            self._start_all(paths, pool)
            self._notifier.status("starting: opening the engine")
            self._supervise(reports, status, pool, metrics)
            return self._shutdown(reports, pool, metrics)
        finally:
            self._kill_all()
            for step in reversed(self._cleanup):
                try:
                    step()
                except OSError as exc:
                    log.warning("clean-up step failed: %s", exc)
            zctx.destroy(linger=0)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _setup_metrics(self, classes: tuple[str, ...]) -> Metrics:
        # The directory was prepared and exported before prometheus_client was imported
        # (`metrics_mode.multiprocess_mode`, entered by `defectd run`).
        metrics = create_metrics([camera.id for camera in self._config.cameras])
        metrics.set_build_info(_version(), sys.version.split()[0])  # its first file
        metrics.init_series(classes, STAGE_KINDS)
        metrics.slots(0, self._config.slots.count)
        self._metrics = metrics
        return metrics

    def _setup_control(
        self,
        zctx: zmq.Context[zmq.Socket[bytes]],
        paths: RunPaths,
        metrics: Metrics,
        card: ModelCard,
    ) -> Reloader:
        """The stages' control PUB and the control socket `defectd reload` talks to."""
        publish = zctx.socket(zmq.PUB)
        publish.setsockopt(zmq.LINGER, 0)
        bind_ipc(publish, paths.control)
        endpoint = control_endpoint(self._config, self._environ)
        router = None
        if self._config_path is not None:
            router = zctx.socket(zmq.ROUTER)
            router.setsockopt(zmq.LINGER, 0)
            socket_path = Path(endpoint.removeprefix("ipc://"))
            try:
                socket_path.parent.mkdir(parents=True, exist_ok=True)
                bind_ipc(router, endpoint)
                socket_path.chmod(0o660)
                self._cleanup.append(lambda: socket_path.unlink(missing_ok=True))
                log.info("control socket %s (defectd reload)", socket_path)
            except (OSError, zmq.ZMQError) as exc:
                router.close()
                router = None
                log.warning(
                    "no control socket at %s (%s): `defectd reload` cannot reach this daemon; "
                    "SIGHUP still reloads (set control.socket to a writable path)",
                    socket_path,
                    exc,
                )
        return Reloader(
            self._config,
            self._config_path,
            metrics,
            publish,
            router,
            model=f"{card.name} {card.version}",
            classes=tuple(card.classes),
            environ=self._environ,
        )

    # -- children ------------------------------------------------------------------------

    def _start_all(self, paths: RunPaths, pool: SlotPool) -> None:
        config = self._config
        kinds = [("publisher", 1), ("postprocess", config.postprocess.workers), ("inference", 1)]
        if config.store.enabled:
            kinds.insert(0, ("store", 1))
        kinds[:0] = [(kind, 1) for kind in enabled_outputs(config)]
        kinds.append(("receiver", config.ingest.receivers))
        for kind, count in kinds:  # downstream first: nothing is sent before its reader binds
            for index in range(count):
                spec = StageSpec(
                    kind, index, config, pool.spec, paths, self._log_level, self._log_format
                )
                child = _Child(spec)
                self._children.append(child)
                self._start(child)

    def _start(self, child: _Child) -> None:
        if self._reloader is not None:  # a restarted stage starts with the running config
            reloader = self._reloader
            child.spec = replace(
                child.spec,
                config=reloader.config,
                generation=reloader.generation,
                assignment=reloader.assignment_items,
            )
        spec = child.spec
        process = self._context.Process(
            target=_ENTRY[spec.kind], args=(spec,), name=spec.name, daemon=False
        )
        process.start()
        child.process, child.started, child.restart_at = process, time.monotonic(), None
        deadline = ENGINE_START_DEADLINE_S if spec.kind == "inference" else STAGE_DEADLINE_S
        self._watchdog.register(spec.name, deadline)
        log.info("started %s (pid %s)", spec.name, process.pid)

    def _check_children(self, pool: SlotPool, metrics: Metrics) -> None:
        now = time.monotonic()
        for child in self._children:
            process = child.process
            if process is not None and not process.is_alive():
                self._reap(child, process, pool, metrics)
                if child.stopping:
                    continue
                ran = now - child.started
                if ran > STABLE_S:
                    child.failures = 0
                restart = self._config.restart
                delay = min(restart.backoff_initial_s * 2**child.failures, restart.backoff_max_s)
                child.failures += 1
                child.restart_at = now + delay
                log.error(
                    "%s (pid %s) died with exit code %s after %.1f s; restarting in %.1f s",
                    child.spec.name,
                    process.pid,
                    process.exitcode,
                    ran,
                    delay,
                )
            if child.restart_at is not None and now >= child.restart_at and not child.stopping:
                self._start(child)
                metrics.worker_restarted(child.spec.kind)

    def _reap(self, child: _Child, process: BaseProcess, pool: SlotPool, metrics: Metrics) -> None:
        """A child exited: join it, forget its live gauges, count the frames it held."""
        process.join()
        child.process = None
        pid = process.pid
        if pid is None:
            return
        mark_process_dead(pid, self._metrics_dir)
        now = time.monotonic()
        reason = "shutdown" if child.stopping else "worker_crash"
        # READY frames are complete and wait in the table, not in the dead process: keep them.
        lost = pool.reclaim(pid, keep_ready=True)
        if child.spec.kind == "postprocess" and not child.stopping:
            lost += self._sent_to_worker(child.spec.index, pool)
        for meta in lost:
            self._account.on_dropped(meta.camera, meta.seq, reason, now)
            metrics.frame_dropped(meta.camera, reason)
        if child.spec.kind == "inference":
            if self._engine is None and not child.stopping:
                self._engine_failures += 1
                if self._engine_failures >= ENGINE_START_TRIES:
                    self._failed = (
                        f"the inference process died {self._engine_failures} times before its "
                        "engine was ready; its log lines above say why"
                    )
            self._engine = None

    def _sent_to_worker(self, index: int, pool: SlotPool) -> list[FrameMeta]:
        """Frames the inference process sent to dead worker `index` and still owns (INFERRED):
        freed, so a message lost in the dead worker's socket cannot hold its slot for ever.
        One still on its way reaches the new worker, whose `advance` then refuses it."""
        inference = next((c for c in self._children if c.spec.kind == "inference"), None)
        if inference is None or inference.process is None or inference.process.pid is None:
            return []  # its own reclaim, when it is reaped, covers these frames
        workers = self._config.postprocess.workers
        cameras = [c.id for c in self._config.cameras if worker_for(c.id, workers) == index]
        return pool.reclaim(inference.process.pid, state=SlotState.INFERRED, cameras=cameras)

    def _signal_children(self, kinds: tuple[str, ...]) -> None:
        for child in self._children:
            if child.spec.kind in kinds:
                self._watchdog.unregister(child.spec.name)  # stopped on purpose, not stalled
            if child.spec.kind in kinds and child.process is not None:
                child.stopping = True
                child.restart_at = None
                if child.process.is_alive():
                    child.process.terminate()  # SIGTERM: the stage finishes what it holds
            elif child.spec.kind in kinds:
                child.stopping = True
                child.restart_at = None

    def _kill_all(self) -> None:
        for child in self._children:
            process = child.process
            if process is not None and process.is_alive():
                process.kill()
            if process is not None:
                process.join(timeout=STOP_WAIT_S)

    # -- the loop ------------------------------------------------------------------------

    def _supervise(
        self,
        reports: zmq.Socket[bytes],
        status: zmq.Socket[bytes],
        pool: SlotPool,
        metrics: Metrics,
    ) -> None:
        next_status = time.monotonic()
        while self._signals == 0 and self._failed is None:
            self._turn(reports, pool, metrics)
            now = time.monotonic()
            if now >= next_status:
                next_status = now + self._config.publish.status_interval_s
                self._send_status(status, pool)
            for camera, seq in self._account.overdue(now, FRAME_TIMEOUT_S):
                log.warning(
                    "camera %s seq %d in flight for %.0f s: dropped", camera, seq, FRAME_TIMEOUT_S
                )
                self._account.on_dropped(camera, seq, "timeout", now)
                metrics.frame_dropped(camera, "timeout")
            if self._ready() and not self._announced_ready:
                self._announced_ready = True
                engine = self._engine.describe() if self._engine else "?"
                log.info("ready: %s", engine)
                self._notifier.ready(f"inspecting: {engine}")

    def _turn(self, reports: zmq.Socket[bytes], pool: SlotPool, metrics: Metrics) -> None:
        """One supervisor iteration: reports, children, gauges, watchdog, heartbeat."""
        if reports.poll(TURN_MS):
            for _ in range(1000):
                try:
                    report = reports.recv_pyobj(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._apply(report)
        if self._reloader is not None:
            if self._reload_asked and self._signals == 0:
                self._reload_asked = False
                self._reloader.reload()
            controlled = [
                c.spec.name for c in self._children if c.spec.kind in CONTROLLED and c.alive
            ]
            self._reloader.turn(controlled)
            self._config = self._reloader.config
        self._check_children(pool, metrics)
        metrics.slots(pool.in_use(), pool.spec.count)
        metrics.set_ready(self._ready())
        self._watchdog.maybe_ping()
        self._heartbeat.beat()

    def _apply(self, report: Report) -> None:
        for event in report.frames:
            self._account.apply(event)
        for _camera, reason, count in report.rejected:
            self._totals.rejected[reason] += count
        self._totals.lost += report.lost
        if self._reloader is not None:
            self._reloader.on_report(report.stage, report.generation, report.swap)
        if report.engine is not None:
            self._engine = report.engine
            self._engine_failures = 0
            self._watchdog.register("inference", STAGE_DEADLINE_S)
        if report.stage in self._watchdog.stages:
            self._watchdog.progress(report.stage)

    def _ready(self) -> bool:
        return all(self._ready_checks().values())

    def _ready_checks(self) -> dict[str, bool]:
        checks = {
            "engine": self._engine is not None
            and any(c.spec.kind == "inference" and c.alive for c in self._children)
        }
        for child in self._children:
            checks[f"stage:{child.spec.name}"] = child.alive
        checks["not_stopping"] = self._signals == 0
        return checks

    def counts(self) -> FrameCounts:
        """Every message since start: accepted frames' accounting plus rejected messages."""
        totals = self._account.totals()
        dropped = Counter(totals.dropped)
        dropped.update(self._totals.rejected)
        rejected = sum(self._totals.rejected.values())
        return FrameCounts(
            received=totals.received + rejected,
            processed=totals.processed,
            dropped=dict(dropped),
            lost=self._totals.lost,
        )

    def _send_status(self, status: zmq.Socket[bytes], pool: SlotPool) -> None:
        counts = self.counts()
        usage = pool.usage()
        event = StatusEvent(
            publish_ns=time.time_ns(),
            uptime_s=time.monotonic() - self._started,
            fps=self._rate.update(counts.processed, time.monotonic_ns()),
            frames=counts,
            queue_depth=usage[SlotState.READY],
            slots_used=pool.spec.count - usage[SlotState.FREE],
            slots_total=pool.spec.count,
            engine=self._engine,
            ready=self._ready(),
        )
        with contextlib.suppress(zmq.Again):  # publisher restarting: the next heartbeat goes
            status.send_pyobj(event, zmq.NOBLOCK)

    # -- stopping ------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("%s: stopping intake, draining frames in flight", signal.Signals(signum).name)
            return
        # A second signal: out now. Children die with us; the segment name must not outlive us.
        log.warning("%s again: exiting at once", signal.Signals(signum).name)
        self._kill_all()
        for step in reversed(self._cleanup):
            with contextlib.suppress(OSError):
                step()
        os._exit(128 + signum)

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        """SIGHUP (``systemctl reload``'s ExecReload may send it): reload the config file."""
        log.info("SIGHUP: reloading %s", self._config_path or "the config")
        self._reload_asked = True

    def _shutdown(self, reports: zmq.Socket[bytes], pool: SlotPool, metrics: Metrics) -> int:
        config = self._config
        self._notifier.stopping("draining frames in flight")
        self._signal_children(("receiver",))
        # Without an engine nothing drains: do not wait for it.
        drain = 0.0 if self._failed is not None else config.shutdown.drain_timeout_s
        began = time.monotonic()
        deadline = began + drain
        drained = False
        last_change, last_totals = time.monotonic(), self._account.totals()
        while time.monotonic() < deadline:
            self._turn(reports, pool, metrics)
            now = time.monotonic()
            totals = self._account.totals()
            if totals != last_totals:
                last_change, last_totals = now, totals
            if any(c.alive for c in self._children if c.spec.kind == "receiver") or pool.in_use():
                continue
            if totals.in_flight == 0 and totals.unmatched == 0:
                drained = True
                break
            # No slot in use and nothing moving: what is left was lost with a crashed stage
            # (a message in its socket, or its unsent reports); waiting longer changes nothing.
            if now - last_change > SETTLE_S:
                break
        drained_for = time.monotonic() - began
        stages = (
            ("receiver",),
            ("inference",),
            ("postprocess",),
            ("publisher",),
            ("store",),
            ("web", "mqtt", "opcua"),
        )
        for kinds in stages:
            self._signal_children(kinds)
            self._wait_exit(kinds, reports, pool, metrics)
        end = time.monotonic() + 0.3  # final reports travel after the process is gone
        while time.monotonic() < end:
            self._turn(reports, pool, metrics)
        now = time.monotonic()
        late = self._account.overdue(float("inf"), 0.0)
        for camera, seq in late:
            self._account.on_dropped(camera, seq, "shutdown", now)
            metrics.frame_dropped(camera, "shutdown")
        if late or not drained:
            # The drain ends at the deadline, or earlier once nothing moves (frames lost with
            # a crashed stage): say which, so a short drain is not read as a timeout.
            log.warning(
                "drain incomplete after %.1f s (shutdown.drain_timeout_s %g): %d frames dropped",
                drained_for,
                config.shutdown.drain_timeout_s,
                len(late),
            )
        counts = self.counts()
        log.info(
            "stopped: received %d, processed %d, dropped %s, lost in transport %d",
            counts.received,
            counts.processed,
            dict(counts.dropped) or "none",
            counts.lost,
        )
        try:
            self._account.check(settled=True)
        except AccountingError as exc:
            log.error("%s", exc)
        if self._failed is not None:
            log.error("giving up: %s", self._failed)
            return 1
        return 0

    def _wait_exit(
        self, kinds: tuple[str, ...], reports: zmq.Socket[bytes], pool: SlotPool, metrics: Metrics
    ) -> None:
        end = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < end:
            self._turn(reports, pool, metrics)
            if not any(c.alive for c in self._children if c.spec.kind in kinds):
                return
        for child in self._children:
            if child.spec.kind in kinds and child.process is not None and child.process.is_alive():
                log.warning("%s did not stop in %.0f s: killing it", child.spec.name, STOP_WAIT_S)
                child.process.kill()
        self._turn(reports, pool, metrics)


def _version() -> str:
    try:
        return metadata.version("defectd")
    except metadata.PackageNotFoundError:
        return "unknown"


def run_daemon(
    config: DaemonConfig,
    metrics_dir: str,
    model: ModelCheck | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the daemon in this process until stopped; the exit status.

    `metrics_dir` is the multiprocess directory already exported as $PROMETHEUS_MULTIPROC_DIR
    (`metrics_mode.multiprocess_mode`); `model` the config's model check when already done.
    """
    supervisor = Supervisor(
        config,
        metrics_dir,
        model=model,
        log_level=log_level,
        log_format=log_format,
        config_path=config_path,
        environ=environ,
    )
    return supervisor.run()
