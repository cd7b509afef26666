"""The OPC UA server's address space: which nodes it has, and what the events make of them.

`address_space` lists every node under ``Objects/DefectInspection`` (paths such as
``Cameras/cam0/FramesProcessed``, their OPC UA data type and meaning); `build_nodes` creates
them on an asyncua server; `InspectionValues` turns the daemon's events into node values and
keeps the ones that changed until the server thread takes them (`take_changes`). The layout
follows OPC 40100 (Machine Vision) where it fits; docs/integration.md#opc-ua has the tree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds

from defectd.daemon.topics import COIL, DEFECT, FRAME, STATUS, kind_of, sanitise_segment

NAMESPACE = "urn:defectd:inspection"
ROOT = "DefectInspection"  # the object under Objects; every path below is relative to it
STALE_S = 5.0  # no heartbeat for this long: the daemon is offline
NO_TIME = datetime(1601, 1, 1, tzinfo=UTC)  # OPC UA's null DateTime: "never"

# The states of `SystemState`.
READY, RUNNING, ERROR, OFFLINE = "ready", "running", "error", "offline"

Value = str | bool | int | float | datetime
_STRING, _BOOL, _DOUBLE = ua.VariantType.String, ua.VariantType.Boolean, ua.VariantType.Double
_TIME, _U32, _U64 = ua.VariantType.DateTime, ua.VariantType.UInt32, ua.VariantType.UInt64
_INITIAL: dict[ua.VariantType, Value] = {
    _STRING: "",
    _BOOL: False,
    _DOUBLE: 0.0,
    _TIME: NO_TIME,
    _U32: 0,
    _U64: 0,
}


@dataclass(frozen=True)
class NodeSpec:
    """One node: its path below `ROOT` (``/``-separated browse names), its description, and
    its data type (None: an object, or a folder of like objects when `folder`)."""

    path: str
    description: str
    variant: ua.VariantType | None = None
    folder: bool = False

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> str:
        return self.path.rpartition("/")[0]


def node_id(path: str, namespace: int) -> ua.NodeId:
    """The string NodeId of `path`: ``ns=<namespace>;s=DefectInspection.Cameras.cam0.…``."""
    text = ".".join((ROOT, *path.split("/"))) if path else ROOT
    return ua.NodeId(ua.String(text), ua.Int16(namespace))


def class_segments(classes: Iterable[str]) -> tuple[str, ...]:
    """The model's class names as node names: as the events carry them (topic segments)."""
    return tuple(dict.fromkeys(sanitise_segment(name) for name in classes))


def address_space(cameras: Sequence[str], classes: Sequence[str]) -> tuple[NodeSpec, ...]:
    """Every node below `ROOT`, parents before children."""
    names = class_segments(classes)
    specs = [
        NodeSpec("SystemState", "ready, running, error or offline", _STRING),
        NodeSpec("Ready", "engine open and warmed up, heartbeats arriving", _BOOL),
        NodeSpec("Line", "the production line", _STRING),
        NodeSpec("FramesPerSecond", "frames processed per second, all cameras", _DOUBLE),
        NodeSpec("UptimeS", "seconds since the daemon started", _DOUBLE),
        NodeSpec("LastHeartbeat", "when the latest status heartbeat was published", _TIME),
        NodeSpec("Engine", "the inference engine"),
        NodeSpec(
            "Engine/Backend", "tensorrt, torch, onnxruntime, openvino; empty: not open", _STRING
        ),
        NodeSpec("Engine/Model", "model name and version", _STRING),
        NodeSpec("Engine/Device", "the device it runs on", _STRING),
        NodeSpec("Engine/Precision", "fp32, fp16 or int8", _STRING),
        NodeSpec("Cameras", "one object per camera", folder=True),
    ]
    for camera in cameras:
        at = f"Cameras/{camera}"
        specs += [
            NodeSpec(at, f"camera {camera}"),
            NodeSpec(
                f"{at}/FramesProcessed", "its frames processed since the server started", _U64
            ),
            NodeSpec(f"{at}/FramesDropped", "frames dropped: the line's total, all cameras", _U64),
            NodeSpec(f"{at}/DefectsFound", "defect regions on its frames since the start", _U64),
            NodeSpec(f"{at}/LastFrameTime", "capture time of its latest processed frame", _TIME),
            NodeSpec(f"{at}/LastDefectClass", "class of its latest defect; empty: none", _STRING),
        ]
    specs += [
        NodeSpec("CurrentCoil", "the coil being inspected"),
        NodeSpec("CurrentCoil/CoilId", "its id; empty: frames without a coil id", _STRING),
        NodeSpec("CurrentCoil/Frames", "its processed frames, all cameras", _U32),
        NodeSpec("CurrentCoil/PositionM", "position along it of the latest frame, m", _DOUBLE),
        NodeSpec("CurrentCoil/Defects", "defect regions on its frames so far", _U32),
        NodeSpec("CurrentCoil/DefectsByClass", "defect regions per class", folder=True),
        *(NodeSpec(f"CurrentCoil/DefectsByClass/{n}", f"{n} regions", _U32) for n in names),
        NodeSpec("LastCoil", "the coil closed last (its coil event)"),
        NodeSpec("LastCoil/CoilId", "its id; empty: none closed yet", _STRING),
        NodeSpec("LastCoil/Grade", "its grade from coils.rules", _STRING),
        NodeSpec("LastCoil/Defects", "strip defects, merged over frames and cameras", _U32),
        NodeSpec("LastCoil/Frames", "processed frames, all cameras", _U32),
        NodeSpec("LastCoil/InspectedM", "metres covered by processed frames", _DOUBLE),
        NodeSpec("LastCoil/GapM", "metres not inspected", _DOUBLE),
        NodeSpec("LastCoil/EndReason", "next_coil, explicit, silence or shutdown", _STRING),
        NodeSpec("LastCoil/ClosedAt", "capture time of its last frame", _TIME),
        NodeSpec("LastCoil/DefectsByClass", "strip defects per class", folder=True),
        *(NodeSpec(f"LastCoil/DefectsByClass/{n}", f"{n} defects", _U32) for n in names),
        NodeSpec("LastCoil/CoilsClosed", "coils closed since the start; written last", _U32),
    ]
    return tuple(specs)


async def build_nodes(
    server: Server, namespace: int, specs: Sequence[NodeSpec], values: Mapping[str, Value]
) -> dict[str, ua.NodeId]:
    """Create `specs` under Objects with their `values`; path → NodeId of each variable."""
    nodes = {
        "": await server.nodes.objects.add_object(node_id("", namespace), f"{namespace}:{ROOT}")
    }
    variables: dict[str, ua.NodeId] = {}
    for spec in specs:
        parent, nid, name = (
            nodes[spec.parent],
            node_id(spec.path, namespace),
            f"{namespace}:{spec.name}",
        )
        if spec.variant is not None:
            node = await parent.add_variable(nid, name, ua.Variant(values[spec.path], spec.variant))
            variables[spec.path] = nid
        elif spec.folder:
            node = await parent.add_folder(nid, name)
        else:
            node = await parent.add_object(nid, name)
        nodes[spec.path] = node
        text = ua.LocalizedText(spec.description)
        await node.write_attribute(AttributeIds.Description, ua.DataValue(ua.Variant(text)))
    return variables


class InspectionValues:
    """The nodes' values, from the events; thread-safe.

    `apply` (each event) and `tick` (about once a second) come from the output stage's
    thread, `take_changes` from the server's. `on_change` is called, outside the lock, when a
    value changes while none was waiting: the server thread's wake-up. `clock` is monotonic
    seconds; no heartbeat for `stale_s` makes the daemon offline.
    """

    def __init__(
        self,
        line: str,
        cameras: Sequence[str],
        classes: Sequence[str],
        *,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        stale_s: float = STALE_S,
    ) -> None:
        self.specs = address_space(cameras, classes)
        self._cameras = frozenset(cameras)
        self._classes = class_segments(classes)
        self._on_change = on_change
        self._clock = clock
        self._stale_s = stale_s
        self._lock = threading.Lock()
        self._values: dict[str, Value] = {
            s.path: _INITIAL[s.variant] for s in self.specs if s.variant is not None
        }
        self._values.update(Line=line, SystemState=OFFLINE)
        self._changed: dict[str, Value] = {}
        self._heartbeat_at: float | None = None  # monotonic, the latest status
        self._status: Mapping[str, Any] = {}
        self._run_id: str | None = None
        self._missed: int | None = None  # frames dropped + lost at the previous heartbeat
        self._missing = False  # frames dropped or lost since the previous heartbeat

    def snapshot(self) -> dict[str, Value]:
        """Every value now; what was waiting in `take_changes` is in it, so it is cleared."""
        with self._lock:
            self._changed.clear()
            return dict(self._values)

    def take_changes(self) -> dict[str, Value]:
        """The values changed since the last call, in the order they changed."""
        with self._lock:
            changed, self._changed = self._changed, {}
            return changed

    def value(self, path: str) -> Value:
        """One node's value now (tests, diagnostics)."""
        with self._lock:
            return self._values[path]

    def apply(self, topic: str, payload: Mapping[str, Any]) -> None:
        """One event (`daemon.events.decode_message`'s dict); other topics are ignored."""
        kind = kind_of(topic)
        with self._lock:
            waiting = bool(self._changed)
            if kind == FRAME:
                self._frame(payload)
            elif kind == DEFECT:
                self._defect(payload)
            elif kind == STATUS:
                self._heartbeat(payload)
            elif kind == COIL:
                self._coil(payload)
            self._update_state()
            wake = not waiting and bool(self._changed)
        if wake:
            self._on_change()

    def tick(self) -> None:
        """Notice heartbeats that stopped."""
        with self._lock:
            waiting = bool(self._changed)
            self._update_state()
            wake = not waiting and bool(self._changed)
        if wake:
            self._on_change()

    # --- under the lock ----------------------------------------------------------------------

    def _set(self, path: str, value: Value) -> None:
        if self._values[path] != value:
            self._values[path] = value
            self._changed.pop(path, None)  # to the end: the order they changed in
            self._changed[path] = value

    def _add(self, path: str, count: int) -> None:
        value = self._values[path]
        assert isinstance(value, int)
        self._set(path, value + count)

    def _frame(self, payload: Mapping[str, Any]) -> None:
        camera = str(payload["camera_id"])
        if camera in self._cameras:
            base = f"Cameras/{camera}"
            self._add(f"{base}/FramesProcessed", 1)
            self._add(f"{base}/DefectsFound", int(payload["defect_count"]))
            self._set(f"{base}/LastFrameTime", _time(payload["capture_ns"]))
        if self._enter_coil(payload.get("coil_id")):
            self._add("CurrentCoil/Frames", 1)
            if (position := payload.get("position_m")) is not None:
                self._set("CurrentCoil/PositionM", float(position))

    def _defect(self, payload: Mapping[str, Any]) -> None:
        camera, name = str(payload["camera_id"]), str(payload["class_name"])
        if camera in self._cameras:
            self._set(f"Cameras/{camera}/LastDefectClass", name)
        if self._enter_coil(payload.get("coil_id")):
            regions = int(payload["region_count"])
            self._add("CurrentCoil/Defects", regions)
            if name in self._classes:
                self._add(f"CurrentCoil/DefectsByClass/{name}", regions)

    def _enter_coil(self, coil_id: object) -> bool:
        """Make `coil_id` the current coil (a new one starts from zero); whether there is one."""
        coil = "" if coil_id is None else str(coil_id)
        if coil != self._values["CurrentCoil/CoilId"]:
            self._set("CurrentCoil/CoilId", coil)
            for path in ("Frames", "Defects", *(f"DefectsByClass/{c}" for c in self._classes)):
                self._set(f"CurrentCoil/{path}", 0)
            self._set("CurrentCoil/PositionM", 0.0)
        return bool(coil)

    def _coil(self, payload: Mapping[str, Any]) -> None:
        coil = str(payload["coil_id"])
        counts = {
            sanitise_segment(str(c["class_name"])): int(c["count"]) for c in payload["classes"]
        }
        self._set("LastCoil/CoilId", coil)
        self._set("LastCoil/Grade", str(payload["grade"]))
        self._set("LastCoil/Defects", int(payload["defects"]))
        self._set("LastCoil/Frames", int(payload["frames"]))
        self._set("LastCoil/InspectedM", float(payload["inspected_m"]))
        self._set("LastCoil/GapM", float(payload["gap_m"]))
        self._set("LastCoil/EndReason", str(payload["end_reason"]))
        self._set("LastCoil/ClosedAt", _time(payload["ended_ns"]))
        for name in self._classes:
            self._set(f"LastCoil/DefectsByClass/{name}", counts.get(name, 0))
        self._add("LastCoil/CoilsClosed", 1)
        if coil == self._values["CurrentCoil/CoilId"]:  # closed by silence: no coil now
            self._enter_coil(None)

    def _heartbeat(self, payload: Mapping[str, Any]) -> None:
        self._heartbeat_at = self._clock()
        self._status = payload
        frames = payload["frames"]
        dropped = sum(int(n) for n in frames["dropped"].values())
        missed = dropped + int(frames["lost"])
        run_id = str(payload["run_id"])
        if run_id != self._run_id:  # a new daemon run counts from zero
            self._run_id, self._missed = run_id, None
        self._missing = self._missed is not None and missed > self._missed
        self._missed = missed
        self._set("FramesPerSecond", float(payload["fps"]))
        self._set("UptimeS", float(payload["uptime_s"]))
        self._set("LastHeartbeat", _time(payload["publish_ns"]))
        engine = payload.get("engine") or {}
        for key in ("backend", "model", "device", "precision"):
            self._set(f"Engine/{key.capitalize()}", str(engine.get(key) or ""))
        for camera in self._cameras:
            self._set(f"Cameras/{camera}/FramesDropped", dropped)

    def _update_state(self) -> None:
        at = self._heartbeat_at
        alive = at is not None and self._clock() - at <= self._stale_s
        ready = alive and bool(self._status.get("ready"))
        if not ready:
            state = OFFLINE
        elif self._missing:
            state = ERROR
        elif float(self._status.get("fps", 0.0)) > 0:
            state = RUNNING
        else:
            state = READY
        self._set("Ready", ready)
        self._set("SystemState", state)


def _time(ns: Any) -> datetime:
    """An event's ``*_ns`` (ns since the Unix epoch) as an OPC UA DateTime (µs); a camera
    clock far off the calendar gives "never" rather than losing the event."""
    try:
        return datetime.fromtimestamp(int(ns) / 1e9, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return NO_TIME
