"""``engine.backend: auto`` on a CPU: the fastest engine that passed parity for this model.

Which CPU engine is fastest depends on the model and the machine (INT8 pays off on CPUs with
VNNI, OpenVINO on some models and not others), so it is measured, not guessed: `defectd
build-engine` times every CPU engine the model may use — ONNX Runtime FP32, and INT8 and
OpenVINO where the model's INT8 file passed its parity check on that runtime
(`engines.benchmarks.side_by_side.runnable`) — at the configured batch and threads, and
writes the result into the engine cache (`choice_path`). `open_engine` then takes the
recorded engine under ``auto`` and logs why; without a record it runs ONNX Runtime FP32 and
says how to measure.

The record is keyed by everything that could change the answer: the model files' sha256, the
runtimes' versions, the CPU, threads and batch; a stale record is simply not found.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from defectd.engines.benchmarks import machine_summary
from defectd.engines.files import write_json
from defectd.engines.model_card import ModelCard

log = logging.getLogger(__name__)

CANDIDATES: tuple[tuple[str, str], ...] = (
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "int8"),
)


@dataclass(frozen=True)
class CpuChoice:
    """The engine picked for one model on this CPU, and what each candidate measured."""

    backend: str
    precision: str
    batch: int
    threads: int
    frames_per_s: dict[str, float]  # "backend precision" → frames/s
    skipped: dict[str, str]  # "backend precision" → why it was not a candidate
    key: str
    date: str

    @property
    def reason(self) -> str:
        others = ", ".join(f"{name} {fps:.1f}" for name, fps in self.frames_per_s.items())
        return (
            f"auto: the fastest CPU engine for this model, measured by `defectd build-engine` "
            f"on {self.date[:10]} at batch {self.batch}, {self.threads} threads (frames/s: "
            f"{others})"
        )


def resolved_threads(threads: int | None) -> int:
    return threads or os.cpu_count() or 1


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def choice_key(card: ModelCard, threads: int, batch: int) -> str:
    """Digest of what the choice depends on."""
    parts: dict[str, Any] = {
        "files": {k: v.sha256 for k, v in sorted(card.files.items()) if k in ("fp32", "int8")},
        "int8_parity": {
            runtime: bool(card.parity.get("int8", {}).get(runtime, {}).get("passed"))
            for runtime in ("onnxruntime", "openvino")
        },
        "runtimes": {p: _version(p) for p in ("onnxruntime", "openvino")},
        "cpu": machine_summary(),
        "threads": threads,
        "batch": batch,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def choice_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"cpu-choice-{key[:20]}.json"


def read_choice(cache_dir: Path, card: ModelCard, threads: int, batch: int) -> CpuChoice | None:
    """The recorded choice for this model and machine, or None (none yet, or stale)."""
    key = choice_key(card, threads, batch)
    path = choice_path(cache_dir, key)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        choice = CpuChoice(**data)
    except (ValueError, TypeError) as exc:
        log.warning("%s: unreadable CPU engine choice (%s); ignoring it", path, exc)
        return None
    return choice if choice.key == key else None


def candidates(card: ModelCard, openvino: bool) -> tuple[list[str], dict[str, str]]:
    """The CPU engines ("backend precision") the model may use here, and why the others not."""
    from defectd.engines.benchmarks.side_by_side import runnable

    usable: list[str] = []
    skipped: dict[str, str] = {}
    for backend, precision in CANDIDATES:
        name = f"{backend} {precision}"
        why = (
            "openvino not installed (pip install 'defectd[openvino]')"
            if backend == "openvino" and not openvino
            else runnable(card, backend, precision)
        )
        if why is None:
            usable.append(name)
        else:
            skipped[name] = why
    return usable, skipped


def measure_choice(
    card: ModelCard,
    threads: int,
    batch: int,
    openvino: bool = True,
    seconds: float = 2.0,
    rounds: int = 2,
) -> CpuChoice:
    """Time every candidate the model may use here, interleaved, and pick the fastest."""
    from defectd.engines.benchmarks.engine import synthetic_frames
    from defectd.engines.benchmarks.side_by_side import time_interleaved

    usable, skipped = candidates(card, openvino)
    variants = [(name.split(" ")[0], name.split(" ")[1]) for name in usable]
    timed = time_interleaved(
        card, variants, synthetic_frames(card, 8, 31337), [batch], threads, seconds / rounds, rounds
    )
    calls = {f"{backend} {precision}": s for (backend, precision, _), s in timed.items()}
    fps = {name: batch * len(s) / sum(s) for name, s in calls.items()}
    best = max(fps, key=lambda name: fps[name])
    backend, precision = best.split(" ")
    return CpuChoice(
        backend=backend,
        precision=precision,
        batch=batch,
        threads=threads,
        frames_per_s=fps,
        skipped=skipped,
        key=choice_key(card, threads, batch),
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def write_choice(cache_dir: Path, choice: CpuChoice) -> Path:
    path = choice_path(cache_dir, choice.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(asdict(choice), path)
    return path
