"""`defectd demo`: simulator + daemon + subscriber on loopback, then a scored summary.

`run_demo(DemoConfig)`:

1. writes a daemon config on free loopback ports into ``out/`` (the simulator binds PUB, the
   daemon's SUB connects: a live line, ``drop_oldest``) and starts the real daemon
   (`tools.loopback.DaemonProcess`), its log in ``out/daemon.log``;
2. waits for ``/readyz``, subscribes to everything it publishes (`tools.loopback.Listener`,
   RLE included in the defect events), then runs the `Simulator` with ``--wait-subscribers``
   and the truth written to ``out/truth.csv``;
3. once every frame sent is settled (processed, dropped or lost) stops the daemon (SIGTERM:
   drain, exit 0) and builds a `DemoSummary`: frames, fps, latency percentiles, defects by
   class, and the Kaggle mean Dice and per-class image recall of the published masks against
   the truth, over the frames that got a frame summary.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from defectd.daemon.background import Background
from defectd.daemon.clients.simulator import (
    Simulator,
    SimulatorConfig,
    SimulatorResult,
    parse_truth_image_id,
    truth_image_id,
)
from defectd.daemon.tools.loopback import (
    DaemonProcess,
    Listener,
    LoopbackPorts,
    line_config,
    settled,
)
from defectd.engines.labels import LabelTable, read_labels
from defectd.engines.scoring import score

DEMO_MM_PER_PX = 0.5  # the synthetic strip's pixels, across and along
DEMO_LONG_SCRATCHES = 0.04  # share of frames where a scratch over several frames starts
# The demo's grades: a coil with many defects of one class is B; a coil with a metre or more
# not inspected (frames dropped or lost) is rejected.
DEMO_GRADE_RULES = [
    {"grade": "B", "per_100m_over": 2000.0},
    {"grade": "reject", "gap_m_over": 1.0},
]
READY_TIMEOUT_S = 180.0  # opening and warming an engine; TensorRT builds take longer
SETTLE_TIMEOUT_S = 30.0  # after the last frame is sent, for the daemon to finish it


@dataclass(frozen=True)
class DemoConfig:
    """What `defectd demo` runs (docs/daemon.md, "Demo")."""

    out: Path
    backend: str = "onnxruntime"
    model: Path | None = None  # None: the bundled model
    cameras: int = 2
    fps: float = 4.0  # per camera
    seconds: float | None = 25.0
    frames: int | None = None  # per camera; with `seconds` whichever comes first
    seed: int = 0
    max_batch: int = 4
    max_wait_ms: float = 50.0
    threads: int | None = None  # engine CPU threads; None: the backend's default
    device: str | None = None
    ready_timeout_s: float = READY_TIMEOUT_S
    status_interval_s: float = 0.5
    coil_frames: int = 40  # frames per coil and camera (0: no coils, no store)

    def __post_init__(self) -> None:
        if self.cameras < 1:
            raise ValueError(f"cameras must be at least 1, got {self.cameras}")
        if not self.fps > 0:
            raise ValueError(f"fps must be positive for a live line, got {self.fps:g}")
        if self.seconds is None and self.frames is None:
            raise ValueError("give seconds or frames: the demo must end by itself")
        if self.coil_frames < 0:
            raise ValueError(f"coil_frames must be 0 or more, got {self.coil_frames}")

    @property
    def camera_ids(self) -> tuple[str, ...]:
        return tuple(f"cam{i}" for i in range(self.cameras))


@dataclass(frozen=True)
class Progress:
    """What the live status line shows."""

    elapsed_s: float
    sent: int
    received: int
    processed: int
    dropped: int
    lost: int
    fps: float  # the daemon's processed frames/s over its last heartbeat interval
    defects: int


@dataclass(frozen=True)
class ClassResult:
    """One class: events published, Kaggle Dice over the scored frames, image recall."""

    class_id: int
    name: str
    events: int  # defect events published (frames where the class was found)
    true_images: int  # scored frames whose truth holds the class
    predicted_images: int
    dice: float
    recall: float | None  # None: the class never occurs in the scored truth
    precision: float | None


@dataclass(frozen=True)
class CoilLine:
    """One coil the demo ran, as the defect store has it."""

    coil_id: str
    grade: str
    inspected_m: float
    gap_m: float
    defects: int
    end_reason: str
    report: str  # the report folder


@dataclass(frozen=True)
class DemoSummary:
    """Everything the demo measured; `to_dict` is what ``--json FILE`` writes."""

    backend: str
    engine: str  # "backend precision on device, model" from the daemon's heartbeat
    cameras: int
    fps_per_camera: float
    seed: int
    sent: int
    received: int
    processed: int
    dropped: dict[str, int]
    lost: int
    summaries: int  # frame summaries the subscriber got
    missed_messages: int  # topic_seq gaps the subscriber saw
    elapsed_s: float  # simulator start → every frame settled
    sent_fps: float
    processed_fps: float  # frame summaries / span of their publish times
    latency_ms: dict[str, float]  # capture → publish, p50/p90/p99/max
    daemon_latency_ms: dict[str, float]  # receive → publish
    scored_frames: int
    mean_dice: float | None
    classes: list[ClassResult]
    daemon_exit: int | None
    daemon_log: str
    truth_csv: str
    config: str
    stopped: bool = False  # ended early by Ctrl-C / SIGTERM
    notes: list[str] = field(default_factory=list)
    coils: list[CoilLine] = field(default_factory=list)  # closed coils, with their reports

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_demo(
    config: DemoConfig,
    stop: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> DemoSummary:
    """Run the demo (module docstring); `stop` ends it early, with a summary of what ran.
    `progress` is called about every `status_interval_s` from the calling thread."""
    stop = stop or threading.Event()
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    truth_path = out / "truth.csv"
    ports = LoopbackPorts()
    engine: dict[str, Any] = {"backend": config.backend, "max_batch": config.max_batch}
    if config.threads is not None:
        engine["threads"] = config.threads
    if config.device is not None:
        engine["device"] = config.device
    sections: dict[str, Mapping[str, Any]] = {
        "batching": {"max_wait_ms": config.max_wait_ms, "policy": "drop_oldest"},
        "slots": {"count": max(32, 4 * config.max_batch + 4 * config.cameras)},
        "postprocess": {"include_rle": True},
        "publish": {"status_interval_s": config.status_interval_s},
    }
    if config.model is not None:
        sections["model"] = {"dir": str(config.model.resolve())}
    database = out / "state" / "defects.db"
    if config.coil_frames:
        database.unlink(missing_ok=True)  # a demo's store holds that demo's coils only
        sections["store"] = {"enabled": True, "url": f"sqlite:///{database.resolve()}"}
        sections["coils"] = {"rules": DEMO_GRADE_RULES}
    daemon_config = line_config(
        ports, config.camera_ids, push=False, engine=engine, line="demo", sections=sections
    )
    if config.coil_frames:  # cameras side by side across the strip, overlapping by 10 mm
        for index, camera in enumerate(daemon_config["cameras"]):
            camera.update(
                across_mm_per_px=DEMO_MM_PER_PX,
                left_mm=index * (camera["width"] * DEMO_MM_PER_PX - 10.0),
                along_from="position_m",
            )
    sim_config = SimulatorConfig(
        seed=config.seed,
        cameras=config.camera_ids,
        fps=config.fps,
        frames=config.frames,
        seconds=config.seconds,
        line="demo",
        mode="pub",
        endpoint=ports.camera_endpoint,
        bind=True,
        wait_subscribers=1,
        wait_timeout_s=30.0,
        truth_out=truth_path,
        status_interval_s=config.status_interval_s,
        coil_frames=config.coil_frames,
        coil_prefix="DEMO",
        mm_per_px=DEMO_MM_PER_PX,
        long_scratches=DEMO_LONG_SCRATCHES if config.coil_frames else 0.0,
    )
    sim_progress: list[SimulatorResult] = []
    # Bad options fail here, before the daemon starts.
    simulator = Simulator(sim_config, progress=sim_progress.append)
    daemon = DaemonProcess(daemon_config, out, ports)
    notes: list[str] = []
    with daemon, Listener(ports.publish_endpoint) as listener:
        if not daemon.wait_ready(config.ready_timeout_s, stop):
            return _summary(config, daemon, listener, None, 0.0, True, notes, truth_path)
        if not listener.wait_subscribed(10.0):
            notes.append("no status heartbeat within 10 s of /readyz")
        sender = Background(lambda: simulator.run(stop), "demo-simulator")
        start = time.monotonic()
        sender.start()
        while sender.is_alive():
            sender.wait(config.status_interval_s)
            if progress is not None:
                sent = sim_progress[-1].sent if sim_progress else 0
                progress(_progress(listener, time.monotonic() - start, sent))
            if daemon.returncode is not None:
                stop.set()
                notes.append(f"the daemon exited with status {daemon.returncode} during the run")
        result = sender.result()  # what the simulator raised is raised here
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not stop.is_set() and time.monotonic() < deadline:
            if settled(listener.last_status(), result.sent):
                with listener.lock:
                    got = listener.frame_count
                status = listener.last_status()
                if status is not None and got >= int(status["frames"]["processed"]):
                    break
            if daemon.returncode is not None:
                break
            if progress is not None:
                progress(_progress(listener, time.monotonic() - start, result.sent))
            time.sleep(0.1)
        else:
            if not stop.is_set():
                notes.append(f"not every frame was settled {SETTLE_TIMEOUT_S:g} s after the end")
        elapsed = time.monotonic() - start
        if progress is not None:
            progress(_progress(listener, elapsed, result.sent))
        if result.stopped:
            notes.append(
                "stopped early: received/processed/dropped are the daemon's last heartbeat "
                "before the stop; the last line of its log has the final count"
            )
        daemon.stop()
        time.sleep(0.3)  # the publisher's last messages, sent while it drained
        summary = _summary(
            config, daemon, listener, result, elapsed, result.stopped, notes, truth_path
        )
    if config.coil_frames:
        summary = replace(summary, coils=coil_reports(database, out / "coils", notes))
    return summary


def coil_reports(database: Path, folder: Path, notes: list[str]) -> list[CoilLine]:
    """A report folder per coil in the demo's store (`defectd coils report`), oldest first."""
    from defectd.daemon.coils.report import write_report
    from defectd.daemon.store.backend import open_store

    if not database.is_file():
        notes.append(f"no defect store at {database}: no coil reports")
        return []
    store = open_store(f"sqlite:///{database}")
    lines = []
    try:
        for coil in reversed(store.coils(limit=10_000)):
            defects = store.defects(coil.coil_id, line=coil.line)
            gaps = store.gaps(coil.coil_id, line=coil.line)
            classes = tuple(count.class_name for count in coil.classes)
            target = folder / coil.coil_id
            write_report(target, coil, defects, gaps, classes, database.parent / "crops")
            lines.append(
                CoilLine(
                    coil.coil_id,
                    coil.grade,
                    round(coil.inspected_m, 3),
                    round(coil.gap_m, 3),
                    coil.defects,
                    coil.end_reason,
                    str(target),
                )
            )
    finally:
        store.close()
    return lines


def _progress(listener: Listener, elapsed: float, sent: int) -> Progress:
    with listener.lock:
        status = listener.collected.status
        defects = len(listener.collected.defects)
    frames: Mapping[str, Any] = (
        status["frames"] if status else {"received": 0, "processed": 0, "dropped": {}}
    )
    return Progress(
        elapsed_s=elapsed,
        sent=sent,
        received=int(frames["received"]),
        processed=int(frames["processed"]),
        dropped=sum(int(n) for n in frames["dropped"].values()),
        lost=int(frames.get("lost", 0)),
        fps=float(status["fps"]) if status else 0.0,
        defects=defects,
    )


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max of `values` in their unit; {} when there are none."""
    if not values:
        return {}
    array = np.asarray(values, np.float64)
    found = np.percentile(array, [50, 90, 99])
    return {
        "p50": round(float(found[0]), 3),
        "p90": round(float(found[1]), 3),
        "p99": round(float(found[2]), 3),
        "max": round(float(array.max()), 3),
    }


def predicted_labels(
    frames: Sequence[Mapping[str, Any]], defects: Sequence[Mapping[str, Any]], num_classes: int
) -> LabelTable:
    """The published masks as a label table keyed like the truth (``<camera>-<seq>.jpg``):
    every frame with a summary is known (clean unless a defect event gives a class its RLE).
    Defect events of frames without a summary are left out: the frame was not complete."""
    table = LabelTable(num_classes=num_classes)
    for frame in frames:
        image = truth_image_id(frame["camera_id"], int(frame["seq"]))
        for class_id in range(1, num_classes + 1):
            table.set(image, class_id, "")
    for event in defects:
        image = truth_image_id(event["camera_id"], int(event["seq"]))
        if image in table.masks:
            table.set(image, int(event["class_id"]), str(event.get("rle") or ""))
    return table


def truth_of(truth: LabelTable, images: Sequence[str]) -> LabelTable:
    """`truth` limited to `images` (each known, clean where the truth has no mask)."""
    table = LabelTable(num_classes=truth.num_classes)
    for image in images:
        parse_truth_image_id(image)  # a demo id, or ValueError
        for class_id in range(1, truth.num_classes + 1):
            table.set(image, class_id, truth.rle(image, class_id))
    return table


def _summary(
    config: DemoConfig,
    daemon: DaemonProcess,
    listener: Listener,
    result: SimulatorResult | None,
    elapsed: float,
    stopped: bool,
    notes: list[str],
    truth_path: Path,
) -> DemoSummary:
    listener.close()
    collected = listener.collected
    status = collected.status or {}
    frames_counts = status.get("frames", {"received": 0, "processed": 0, "dropped": {}, "lost": 0})
    engine = status.get("engine") or {}
    classes_names: list[str] = list(engine.get("classes", []))
    engine_text = (
        f"{engine['backend']} {engine['precision']} on {engine['device']}, {engine['model']}"
        if engine
        else config.backend
    )
    frames = collected.frames
    latency = [float(f["latency_ms"]) for f in frames]
    inside = [float(f["daemon_latency_ms"]) for f in frames]
    publish = [int(f["publish_ns"]) for f in frames]
    span = (max(publish) - min(publish)) / 1e9 if len(publish) > 1 else 0.0
    processed_fps = (len(frames) - 1) / span if span > 0 else 0.0
    sent = result.sent if result is not None else 0
    events_by_class = Counter(int(e["class_id"]) for e in collected.defects)
    num_classes = len(classes_names) or (max(events_by_class) if events_by_class else 4)
    names = classes_names or [f"class{c}" for c in range(1, num_classes + 1)]
    mean_dice: float | None = None
    class_results: list[ClassResult] = []
    scored = 0
    if frames and truth_path.is_file():
        predicted = predicted_labels(frames, collected.defects, num_classes)
        shape = _frame_shape(collected.defects)
        truth = truth_of(read_labels(truth_path, num_classes, shape), sorted(predicted.masks))
        report = score(truth, predicted, shape=shape)
        scored, mean_dice = report.images, report.mean_dice
        for entry in report.classes:
            class_results.append(
                ClassResult(
                    class_id=entry.class_id,
                    name=names[entry.class_id - 1],
                    events=events_by_class.get(entry.class_id, 0),
                    true_images=entry.true_images,
                    predicted_images=entry.predicted_images,
                    dice=entry.dice,
                    recall=entry.recall,
                    precision=entry.precision,
                )
            )
    elif not frames:
        notes.append("no frame summary arrived: nothing to score")
    return DemoSummary(
        backend=config.backend,
        engine=engine_text,
        cameras=config.cameras,
        fps_per_camera=config.fps,
        seed=config.seed,
        sent=sent,
        received=int(frames_counts["received"]),
        processed=int(frames_counts["processed"]),
        dropped={k: int(v) for k, v in frames_counts["dropped"].items()},
        lost=int(frames_counts.get("lost", 0)),
        summaries=len(frames),
        missed_messages=listener.gaps.total_missed,
        elapsed_s=round(elapsed, 3),
        sent_fps=round(sent / elapsed, 2) if elapsed > 0 else 0.0,
        processed_fps=round(processed_fps, 2),
        latency_ms=percentiles(latency),
        daemon_latency_ms=percentiles(inside),
        scored_frames=scored,
        mean_dice=mean_dice,
        classes=class_results,
        daemon_exit=daemon.returncode,
        daemon_log=str(daemon.log_path),
        truth_csv=str(truth_path),
        config=str(daemon.config_path),
        stopped=stopped,
        notes=notes,
    )


def _frame_shape(defects: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    for event in defects:
        height, width = event["frame_shape"]
        return int(height), int(width)
    return 256, 1600  # the synthetic line's frames
