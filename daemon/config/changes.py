"""What a reload changes: each changed key is applied live, by a model swap, or waits for a
restart (`plan_reload`).

A reload never leaves the daemon between two configs: `ReloadPlan.running` is the new file
with every key that needs a restart put back at its running value, so what runs is always
one well-defined config, and `ReloadPlan.lines` tells the operator which keys wait (like
PostgreSQL's "parameter cannot be changed without restarting the server").

How each key applies (docs/deploy.md, "Changing a running daemon"):

- live, from the next frame or batch: ``model.thresholds``, ``batching.max_wait_ms``,
  ``postprocess.include_rle`` and ``max_regions``, ``publish.status_interval_s``, the
  ``shadow``, ``shutdown`` and ``restart`` sections, and cameras added, removed or changed
  whose frame size the slot pool already holds;
- by a model swap (loaded and checked beside the running engine): ``model.dir`` and the
  ``engine`` section;
- at the next restart: everything that sizes or binds something at start (the slot pool,
  sockets, stages, the line name), listed in `_RESTART`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from defectd.daemon.config.schema import SECTIONS, CameraSettings, DaemonConfig

LIVE, SWAP, RESTART = "live", "swap", "restart"

_LIVE = frozenset(
    {
        "model.thresholds",
        "batching.max_wait_ms",
        "postprocess.include_rle",
        "postprocess.max_regions",
        "publish.status_interval_s",
        "shadow",
        "shutdown",
        "restart",
    }
)
_SWAP = frozenset({"model.dir", "engine"})
# Why a key needs a restart, by key or by section.
_RESTART = {
    "line": "the line name is in every topic, metric and stored row",
    "ingest": "the receivers' socket options are set when their sockets open",
    "slots": "the shared-memory slot pool is sized at start",
    "batching.policy": "the slot pool's policy is fixed at start",
    "batching.tile_overlap": "tile plans are made when the engine opens",
    "postprocess.workers": "post-processing workers are started at start",
    "publish": "the event socket is bound at start",
    "metrics": "the metrics server binds at start",
    "security": "CURVE keys are loaded when the sockets open",
    "coils": "the store stage's coil tracker is set up at start",
    "store": "the store stage is started with it",
    "web": "the web view is started with it",
    "mqtt": "the MQTT bridge is started with it",
    "opcua": "the OPC UA server is started with it",
    "control": "the control socket is bound at start",
    "logging": "each process sets up its logging at start",
}
_GEOMETRY = ("across_mm_per_px", "left_mm", "along_mm_per_px", "along_from")


@dataclass(frozen=True)
class Change:
    """One changed key and how it applies."""

    key: str  # "model.thresholds", "cameras.cam2", "engine.precision"
    how: str  # LIVE, SWAP or RESTART
    detail: str = ""  # "added", "removed", or why it needs a restart

    def describe(self) -> str:
        if self.how == RESTART:
            return f"{self.key}: needs a restart ({self.detail}); the running value is kept"
        what = f" {self.detail}" if self.detail else ""
        how = "by a model swap" if self.how == SWAP else "live"
        return f"{self.key}:{what} applied {how}"


@dataclass(frozen=True)
class ReloadPlan:
    """What a reload does: the config that runs after it, and each change."""

    running: DaemonConfig
    changes: tuple[Change, ...]

    @property
    def swap(self) -> bool:
        """Whether the engine or model changes (a model swap)."""
        return any(change.how == SWAP for change in self.changes)

    @property
    def waiting(self) -> tuple[Change, ...]:
        """Changes kept at their running value until a restart."""
        return tuple(change for change in self.changes if change.how == RESTART)

    def lines(self) -> list[str]:
        """One line per change; a single line when nothing changed."""
        return [change.describe() for change in self.changes] or ["no change"]


def plan_reload(old: DaemonConfig, new: DaemonConfig) -> ReloadPlan:
    """How a running `old` config becomes `new`, both already checked (`parse_config`)."""
    changes: list[Change] = []
    sections: dict[str, Any] = {}
    for name in SECTIONS:
        if name == "cameras":
            continue
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        kept: dict[str, Any] = {}
        for item in fields(before):
            was, now = getattr(before, item.name), getattr(after, item.name)
            if was == now:
                continue
            key = f"{name}.{item.name}"
            how, why = _rule(name, key)
            changes.append(Change(key, how, why))
            if how == RESTART:
                kept[item.name] = was
        if kept:
            sections[name] = replace(after, **kept)
    cameras, camera_changes = _cameras(old, new)
    changes.extend(camera_changes)
    running = replace(new, cameras=cameras, **sections)
    return ReloadPlan(running, tuple(changes))


def _rule(section: str, key: str) -> tuple[str, str]:
    for name in (key, section):
        if name in _LIVE:
            return LIVE, ""
        if name in _SWAP:
            return SWAP, ""
        if name in _RESTART:
            return RESTART, _RESTART[name]
    return RESTART, "it is read at start"


def _cameras(
    old: DaemonConfig, new: DaemonConfig
) -> tuple[tuple[CameraSettings, ...], list[Change]]:
    """The cameras that run after the reload, and one change per camera added, removed or
    changed: live where the slot pool already holds its frame size."""
    before = {camera.id: camera for camera in old.cameras}
    after = {camera.id: camera for camera in new.cameras}
    sizes = set(old.frame_sizes)
    changes: list[Change] = []
    running: list[CameraSettings] = []
    tracked = old.store.enabled and new.store.enabled
    for camera in new.cameras:
        key = f"cameras.{camera.id}"
        was = before.get(camera.id)
        if was == camera:
            running.append(camera)
            continue
        why = ""
        if (camera.height, camera.width) not in sizes:
            why = (
                f"frames {camera.width}×{camera.height} need a slot group of their own, made "
                "at start"
            )
        elif tracked and (was is None or _geometry(was) != _geometry(camera)):
            why = "the store stage's coil tracker fixes its cameras and their geometry at start"
        if why:
            changes.append(Change(key, RESTART, why))
            if was is not None:
                running.append(was)
            continue
        changes.append(Change(key, LIVE, "added" if was is None else "changed"))
        running.append(camera)
    for camera_id, camera in before.items():
        if camera_id in after:
            continue
        key = f"cameras.{camera_id}"
        if tracked:
            why = "the store stage's coil tracker fixes its cameras at start"
            changes.append(Change(key, RESTART, why))
            running.append(camera)
        else:
            changes.append(Change(key, LIVE, "removed"))
    return tuple(running), changes


def _geometry(camera: CameraSettings) -> tuple[object, ...]:
    return tuple(getattr(camera, name) for name in _GEOMETRY)


def assign_sockets(
    sockets: tuple[str, ...], receivers: int, previous: dict[str, int] | None = None
) -> dict[str, int]:
    """Which receiver reads each socket endpoint: at start round-robin in config order (the
    n-th endpoint goes to receiver n mod `receivers`); on a reload every endpoint keeps its
    receiver from `previous` and a new one goes to the receiver reading fewest, so adding a
    camera never moves another camera's socket."""
    if previous is None:
        return {endpoint: index % receivers for index, endpoint in enumerate(sockets)}
    kept = {endpoint: previous[endpoint] for endpoint in sockets if endpoint in previous}
    load = [0] * receivers
    for receiver in kept.values():
        load[receiver] += 1
    for endpoint in sockets:
        if endpoint not in kept:
            receiver = min(range(receivers), key=lambda index: (load[index], index))
            kept[endpoint] = receiver
            load[receiver] += 1
    return {endpoint: kept[endpoint] for endpoint in sockets}
