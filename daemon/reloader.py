"""The supervisor's side of a reload (``defectd reload``, SIGHUP): re-read the config file,
check it, work out what changes (`plan_reload`), tell the stages (`Reconfigure` on the run
directory's control PUB) and answer `defectd reload` once they have applied it.

- An invalid file, thresholds the model lacks, or a model with other classes: the reload is
  refused as a whole with ``FILE: key: problem`` lines, the running config is kept, and
  ``defectd_reloads_total{outcome="refused"}`` counts it.
- Keys that need a restart keep their running value and say so (`ReloadPlan.running`).
- A model swap: the config the supervisor starts stages with (`Reloader.config`) keeps the
  serving model until the inference process reports the swap done, so a stage restarted
  meanwhile opens the model that serves; a failed swap leaves it there.

The newest `Reconfigure` is sent again every `RESEND_S`: a stage that restarted as it was
first sent gets it all the same (stages ignore generations they have).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import zmq

from defectd.daemon.config import ConfigError, DaemonConfig, check_model, load_config
from defectd.daemon.config.changes import ReloadPlan, assign_sockets, plan_reload
from defectd.daemon.control import RELOAD_TIMEOUT_S, Reconfigure, ReloadReply, SwapOutcome
from defectd.daemon.metrics import Metrics

log = logging.getLogger(__name__)

RESEND_S = 2.0
REPLY_WITHIN_S = RELOAD_TIMEOUT_S - 10.0  # answer before `defectd reload` gives up
CONTROLLED = ("receiver", "inference", "postprocess", "publisher")  # they apply a Reconfigure


@dataclass
class _Pending:
    """A `defectd reload` waiting for its answer (`requester` None: a SIGHUP)."""

    requester: bytes | None
    generation: int
    swap: bool
    lines: list[str]
    deadline: float


@dataclass
class Reloader:
    """Holds the running config and generation; `reload` starts one, `turn` finishes it."""

    config: DaemonConfig  # what stages are started with (the serving model's dir and engine)
    path: Path | None  # the config file; None: the daemon was not started from one
    metrics: Metrics
    publish: zmq.Socket[bytes]  # the run directory's control PUB
    router: zmq.Socket[bytes] | None = None  # the control socket (`defectd reload`)
    environ: Mapping[str, str] | None = None  # as the config was first read with
    generation: int = 0
    assignment: dict[str, int] = field(default_factory=dict)
    model: str = ""  # "name version" serving now
    classes: tuple[str, ...] = ()  # the model's class names (a swap keeps them)
    _target: DaemonConfig | None = None  # the config last sent (None: nothing sent yet)
    _applied: dict[str, int] = field(default_factory=dict)  # stage name → its generation
    _swaps: dict[int, SwapOutcome] = field(default_factory=dict)
    _pending: list[_Pending] = field(default_factory=list)
    _sent_at: float = 0.0

    def __post_init__(self) -> None:
        receivers = self.config.ingest.receivers
        endpoints = tuple(group.endpoint for group in self.config.sockets)
        self.assignment = assign_sockets(endpoints, receivers)

    @property
    def assignment_items(self) -> tuple[tuple[str, int], ...]:
        return tuple(self.assignment.items())

    # -- a reload ------------------------------------------------------------------------

    def reload(self, requester: bytes | None = None) -> None:
        """Re-read the config file and apply what changed (the answer comes from `turn`)."""
        if self.path is None:
            self._answer(requester, False, ["the daemon was not started from a config file"])
            return
        try:
            plan = self._plan(load_config(self.path, self.environ))
        except ConfigError as exc:
            self.metrics.reloaded("refused", self.generation)
            log.error("reload refused, the running config is kept:")
            for line in exc.problems:
                log.error("  %s", line)
            self._answer(requester, False, list(exc.problems))
            return
        if not plan.changes:
            self.metrics.reloaded("unchanged", self.generation)
            log.info("reload: %s has not changed", self.path)
            self._answer(requester, True, ["no change"])
            return
        self.generation += 1
        running = plan.running
        endpoints = tuple(group.endpoint for group in running.sockets)
        self.assignment = assign_sockets(endpoints, running.ingest.receivers, self.assignment)
        self._target = running
        if plan.swap:  # until the inference process reports the swap done
            model = replace(running.model, dir=self.config.model.dir)
            running = replace(running, model=model, engine=self.config.engine)
        self.config = running
        self.metrics.reloaded("applied", self.generation)
        ids = {camera.id for camera in running.cameras}
        added = sorted(ids - self.metrics.cameras)
        for removed in sorted(self.metrics.cameras - ids):
            self.metrics.camera_removed(removed)
        self.metrics.set_cameras(ids)
        self.metrics.init_cameras(added, self.classes)
        lines = plan.lines()
        log.info("reload %d of %s:", self.generation, self.path)
        for line in lines:
            log.info("  %s", line)
        self._send(time.monotonic())
        deadline = time.monotonic() + REPLY_WITHIN_S
        self._pending.append(_Pending(requester, self.generation, plan.swap, lines, deadline))

    def _plan(self, new: DaemonConfig) -> ReloadPlan:
        plan = plan_reload(self.config, new)
        checked = check_model(plan.running)  # thresholds against the (new) model: ConfigError
        if plan.swap:
            serving = check_model(self.config, verify=False).card
            if tuple(checked.card.classes) != tuple(serving.classes):
                raise ConfigError(
                    [
                        f"{new.source}: model.dir: {new.model.dir} has classes "
                        f"{', '.join(checked.card.classes)}; the running model has "
                        f"{', '.join(serving.classes)}: a model with other classes needs a "
                        "restart (events' class ids would change meaning)"
                    ]
                )
        return plan

    # -- what the stages say -------------------------------------------------------------

    def on_report(self, stage: str, generation: int, swap: SwapOutcome | None) -> None:
        self._applied[stage] = generation
        if swap is None:
            return
        self._swaps[swap.generation] = swap
        if swap.ok:
            self.model = swap.model
            if self._target is not None:  # stages start with the new model from now on
                self.config = replace(
                    self.config,
                    model=replace(self.config.model, dir=self._target.model.dir),
                    engine=self._target.engine,
                )

    def turn(self, live_stages: list[str]) -> None:
        """One supervisor turn: requests on the control socket, the resend, the answers."""
        now = time.monotonic()
        self._read_requests()
        if self._target is not None and now - self._sent_at >= RESEND_S:
            self._send(now)
        for pending in list(self._pending):
            waiting = [s for s in live_stages if self._applied.get(s, 0) < pending.generation]
            swap = self._swaps.get(pending.generation)
            if waiting or (pending.swap and swap is None):
                if now < pending.deadline:
                    continue
                what = ", ".join(waiting) if waiting else "the model swap"
                pending.lines.append(f"not confirmed within {REPLY_WITHIN_S:g} s: {what}")
                self._finish(pending, False)
                continue
            ok = True
            if swap is not None and swap.ok:
                pending.lines.append(f"model swap: {swap.model} serves after {swap.seconds:.1f} s")
            elif swap is not None:
                pending.lines.append(
                    f"model swap failed, {swap.model} keeps serving: {swap.detail}"
                )
                ok = False
            self._finish(pending, ok)

    def _finish(self, pending: _Pending, ok: bool) -> None:
        self._pending.remove(pending)
        if pending.requester is None:
            if not ok:
                log.error("reload %d: %s", pending.generation, pending.lines[-1])
            return
        self._answer(pending.requester, ok, pending.lines)

    def _send(self, now: float) -> None:
        if self._target is None:
            return
        message = Reconfigure(self.generation, self._target, self.assignment_items)
        with contextlib.suppress(zmq.Again):  # PUB drops rather than blocks; resent anyway
            self.publish.send_pyobj(message, zmq.NOBLOCK)
        self._sent_at = now

    # -- the control socket --------------------------------------------------------------

    def _read_requests(self) -> None:
        if self.router is None:
            return
        for _ in range(16):
            try:
                requester, _empty, body = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                continue  # not a REQ envelope
            try:
                command = json.loads(body).get("command")
            except (ValueError, AttributeError):
                command = None
            if command == "reload":
                self.reload(requester)
            else:
                self._answer(requester, False, [f"unknown request {body[:60]!r}: try reload"])

    def _answer(self, requester: bytes | None, ok: bool, lines: list[str]) -> None:
        if requester is None or self.router is None:
            return
        reply = ReloadReply(ok, self.generation, tuple(lines), self.model)
        try:
            self.router.send_multipart([requester, b"", reply.to_json()], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the requester gave up meanwhile
            log.info("reload answer not delivered: %s", exc)
