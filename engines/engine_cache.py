"""On-disk cache of built TensorRT engines, keyed by everything that makes a plan valid.

A TensorRT plan only runs on the TensorRT version and GPU that built it, for the ONNX file and
optimisation profile it was built from. `CacheKey` holds those; its digest names the file:
``defectd-<model>-<digest[:16]>.engine``, with a JSON sidecar that repeats the key and records
the sha256 of the plan bytes, so a truncated or corrupt file is found before TensorRT reads it.
The timing cache (per TensorRT version and GPU, shared by every model) lives beside the plans.

Pure Python: nothing here imports TensorRT, so all of it is tested on any machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from defectd.engines.errors import InvalidInput, InvalidSetting, UserError
from defectd.engines.files import atomic_write, write_json
from defectd.engines.model_card import InputSpec

log = logging.getLogger(__name__)

# Bump when what a plan depends on changes outside the key (builder settings in
# engines/tensorrt_build.py): every cached engine is then rebuilt once.
CACHE_FORMAT = 1
Shape = tuple[int, int, int, int]


class EngineCacheError(UserError, OSError):
    """The cache directory cannot be used; the message names the fix."""


@dataclass(frozen=True)
class ProfileShapes:
    """The optimisation profile of the input: smallest, tuned-for and largest N×C×H×W."""

    min: Shape
    opt: Shape
    max: Shape

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def profile_shapes(spec: InputSpec, opt_batch: int, max_batch: int) -> ProfileShapes:
    """Batch 1 to `max_batch`, tuned for `opt_batch`; ValueError naming the fix."""
    if max_batch < 1:
        raise InvalidSetting(f"max_batch must be at least 1, got {max_batch}: set --max-batch")
    if not 1 <= opt_batch <= max_batch:
        raise InvalidSetting(
            f"opt_batch {opt_batch} is outside 1..max_batch ({max_batch}): set --opt-batch "
            "(engine.opt_batch) to the batch size the line usually fills"
        )
    frame = (spec.channels, spec.height, spec.width)
    if min(frame) < 1:
        raise InvalidInput(f"model input {frame} has an empty axis; re-export the model")
    return ProfileShapes((1, *frame), (opt_batch, *frame), (max_batch, *frame))


@dataclass(frozen=True)
class CacheKey:
    """Everything a built plan depends on; two keys with equal digests share one plan."""

    model: str  # model name, for a readable file name
    onnx_sha256: str  # of the FP16 ONNX the plan is built from
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    profile: ProfileShapes
    workspace_mb: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists, not tuples), so it compares equal after a JSON round trip."""
        return {
            "model": self.model,
            "onnx_sha256": self.onnx_sha256,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": list(self.compute_capability),
            "profile": self.profile.to_dict(),
            "workspace_mb": self.workspace_mb,
        }

    def digest(self) -> str:
        """sha256 hex of the canonical JSON of the key and the cache format."""
        canonical = json.dumps(
            {"cache_format": CACHE_FORMAT, **self.to_dict()},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def describe(self) -> str:
        major, minor = self.compute_capability
        return (
            f"{self.model} onnx {self.onnx_sha256[:12]}, TensorRT {self.tensorrt_version}, "
            f"{self.gpu_name} (sm {major}.{minor}), batch {self.profile.min[0]}.."
            f"{self.profile.max[0]} opt {self.profile.opt[0]}, workspace {self.workspace_mb} MiB"
        )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:48] or "model"


class EngineCache:
    """Plans and the timing cache in one directory (created on first write)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def path_for(self, key: CacheKey) -> Path:
        return self.directory / f"defectd-{_slug(key.model)}-{key.digest()[:16]}.engine"

    def sidecar_for(self, key: CacheKey) -> Path:
        return self.path_for(key).with_suffix(".json")

    def timing_cache_path(self, key: CacheKey) -> Path:
        """One timing cache per TensorRT version and GPU, shared by every model and profile."""
        major, minor = key.compute_capability
        name = f"timing-trt{key.tensorrt_version}-{_slug(key.gpu_name)}-sm{major}{minor}.cache"
        return self.directory / name

    def check_writable(self) -> None:
        """Create the directory; EngineCacheError naming the fix when it cannot be written."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._not_writable(exc.strerror or str(exc)) from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise self._not_writable("permission denied")

    def _not_writable(self, why: str) -> EngineCacheError:
        return EngineCacheError(
            f"engine cache dir {self.directory} is not writable ({why}): set engine.cache_dir "
            "(--cache-dir, $DEFECTD_ENGINE_CACHE) to a writable directory or fix its permissions"
        )

    def load(self, key: CacheKey) -> bytes | None:
        """The cached plan for `key`, or None when there is none or it fails its checks."""
        path, sidecar = self.path_for(key), self.sidecar_for(key)
        if not path.is_file():
            return None
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            plan = path.read_bytes()
        except (OSError, ValueError) as exc:
            return self._reject(path, f"sidecar {sidecar.name} unreadable: {exc}")
        if not isinstance(meta, dict):
            return self._reject(path, f"sidecar {sidecar.name} is not a JSON object")
        if meta.get("digest") != key.digest() or meta.get("key") != key.to_dict():
            log.warning(
                "cached engine %s was built for another key (%s); rebuilding", path, sidecar
            )
            return None
        actual = hashlib.sha256(plan).hexdigest()
        if actual != meta.get("plan_sha256"):
            return self._reject(
                path,
                f"{len(plan)} bytes with sha256 {actual[:12]}…, sidecar expects "
                f"{meta.get('plan_bytes')} bytes with {str(meta.get('plan_sha256'))[:12]}…",
            )
        return plan

    @staticmethod
    def _reject(path: Path, why: str) -> None:
        log.warning("cached engine %s is corrupt (%s); rebuilding", path, why)
        return None

    def store(self, key: CacheKey, plan: bytes) -> Path:
        """Write the plan, then its sidecar, each write-then-rename; return the plan's path."""
        if not plan:
            raise ValueError("refusing to cache an empty TensorRT plan")
        self.check_writable()
        path = self.path_for(key)
        atomic_write(path, lambda partial: partial.write_bytes(plan))
        # The sidecar goes last: a crash between the two leaves a plan whose sha256 does not
        # match, which `load` rejects.
        meta = {
            "format": CACHE_FORMAT,
            "digest": key.digest(),
            "key": key.to_dict(),
            "plan_sha256": hashlib.sha256(plan).hexdigest(),
            "plan_bytes": len(plan),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json(meta, self.sidecar_for(key))
        return path


def io_buffer_sizes(
    spec: InputSpec, num_classes: int, max_batch: int, precision: str
) -> dict[str, int]:
    """Bytes of each IO tensor at `max_batch`: uint8 frames in, float16/float32 outputs."""
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision {precision!r}: use fp16 or fp32")
    if num_classes < 1 or max_batch < 1:
        raise ValueError(f"need num_classes ≥ 1 and max_batch ≥ 1, got {num_classes}, {max_batch}")
    item = 2 if precision == "fp16" else 4
    pixels = spec.height * spec.width
    return {
        "frames": max_batch * spec.channels * pixels,
        "probs": max_batch * num_classes * pixels * item,
        "presence": max_batch * num_classes * item,
        "peak": max_batch * num_classes * item,
    }
