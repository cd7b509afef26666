"""The engine cache: keys, file names, integrity checks and buffer sizes (no TensorRT needed)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from defectd.engines.engine_cache import (
    CacheKey,
    EngineCache,
    EngineCacheError,
    ProfileShapes,
    io_buffer_sizes,
    profile_shapes,
)
from defectd.engines.model_card import InputSpec

SPEC = InputSpec(channels=1, height=256, width=1600)
PLAN = b"\x00plan bytes\xff" * 1000


def make_key(**changes: Any) -> CacheKey:
    key = CacheKey(
        model="tiny",
        onnx_sha256="ab" * 32,
        tensorrt_version="10.13.3.9",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability=(9, 0),
        profile=profile_shapes(SPEC, 8, 32),
        workspace_mb=4096,
    )
    return dataclasses.replace(key, **changes)


def test_profile_shapes_span_batch_one_to_max() -> None:
    assert profile_shapes(SPEC, 8, 32) == ProfileShapes(
        (1, 1, 256, 1600), (8, 1, 256, 1600), (32, 1, 256, 1600)
    )
    assert profile_shapes(SPEC, 1, 1).max == (1, 1, 256, 1600)


@pytest.mark.parametrize(
    ("opt", "max_batch", "message"),
    [(0, 8, "--opt-batch"), (9, 8, "outside 1..max_batch"), (1, 0, "--max-batch")],
)
def test_profile_shapes_name_the_fix(opt: int, max_batch: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        profile_shapes(SPEC, opt, max_batch)


def test_digest_is_stable_and_canonical() -> None:
    key = make_key()
    assert key.digest() == make_key().digest()
    assert len(key.digest()) == 64 and int(key.digest(), 16) >= 0
    # What the sidecar stores compares equal to the key after a JSON round trip.
    assert json.loads(json.dumps(key.to_dict())) == key.to_dict()


@pytest.mark.parametrize(
    "change",
    [
        {"model": "other"},
        {"onnx_sha256": "cd" * 32},
        {"tensorrt_version": "11.0.0.1"},
        {"gpu_name": "NVIDIA L4"},
        {"compute_capability": (8, 9)},
        {"profile": profile_shapes(SPEC, 4, 32)},
        {"profile": profile_shapes(SPEC, 8, 16)},
        {"workspace_mb": 2048},
    ],
)
def test_any_component_changes_the_digest(change: dict[str, Any]) -> None:
    assert make_key(**change).digest() != make_key().digest()


def test_file_names_are_readable(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    key = make_key(model="defectd deeplab/v3+")
    path = cache.path_for(key)
    assert path.name == f"defectd-defectd-deeplab-v3-{key.digest()[:16]}.engine"
    assert cache.sidecar_for(key) == path.with_suffix(".json")
    timing = cache.timing_cache_path(key).name
    assert timing == "timing-trt10.13.3.9-NVIDIA-H100-80GB-HBM3-sm90.cache"
    # Per TensorRT and GPU only: another model or profile shares it.
    assert cache.timing_cache_path(make_key(model="x", workspace_mb=1)).name == timing


def test_store_then_load_round_trip(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "new" / "dir")
    key = make_key()
    assert cache.load(key) is None
    path = cache.store(key, PLAN)
    assert path == cache.path_for(key) and path.read_bytes() == PLAN
    assert cache.load(key) == PLAN
    assert not list(path.parent.glob("*.partial"))
    meta = json.loads(cache.sidecar_for(key).read_text())
    assert meta["key"] == key.to_dict() and meta["plan_bytes"] == len(PLAN)
    assert cache.load(make_key(workspace_mb=1)) is None  # another key, another file


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(path.read_bytes()[:100]),  # truncated
        lambda path: path.write_bytes(b"X" + path.read_bytes()[1:]),  # one byte flipped
        lambda path: path.with_suffix(".json").unlink(),  # sidecar lost
        lambda path: path.with_suffix(".json").write_text("{not json"),
    ],
    ids=["truncated", "corrupt", "no-sidecar", "bad-sidecar"],
)
def test_damaged_engine_is_rejected_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], object]
) -> None:
    cache = EngineCache(tmp_path)
    key = make_key()
    damage(cache.store(key, PLAN))
    with caplog.at_level(logging.WARNING, logger="defectd.engines.engine_cache"):
        assert cache.load(key) is None
    assert "is corrupt" in caplog.text and "rebuilding" in caplog.text


def test_sidecar_for_another_key_is_rejected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = EngineCache(tmp_path)
    key = make_key()
    cache.store(key, PLAN)
    sidecar = cache.sidecar_for(key)
    meta = json.loads(sidecar.read_text())
    meta["key"]["gpu_name"] = "NVIDIA L4"
    sidecar.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="defectd.engines.engine_cache"):
        assert cache.load(key) is None
    assert "another key" in caplog.text and "rebuilding" in caplog.text


def test_empty_plan_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        EngineCache(tmp_path).store(make_key(), b"")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere; permissions not testable")
def test_unwritable_dir_names_the_fix(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for directory in (locked, locked / "sub"):
            cache = EngineCache(directory)
            with pytest.raises(EngineCacheError, match="is not writable") as caught:
                cache.store(make_key(), PLAN)
            assert "engine.cache_dir" in str(caught.value)
            assert "permissions" in str(caught.value)
            assert isinstance(caught.value, OSError)  # the CLI prints it as one line
    finally:
        locked.chmod(0o700)


def test_cache_dir_under_a_file_names_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(
        EngineCacheError, match=r"a-file/engines is not writable .*engine.cache_dir"
    ):
        EngineCache(blocker / "engines").store(make_key(), PLAN)


def test_buffer_sizes_at_max_batch() -> None:
    fp16 = io_buffer_sizes(SPEC, 4, 32, "fp16")
    assert fp16 == {
        "frames": 32 * 256 * 1600,  # uint8: 400 KiB a frame
        "probs": 32 * 4 * 256 * 1600 * 2,
        "presence": 32 * 4 * 2,
        "peak": 32 * 4 * 2,
    }
    fp32 = io_buffer_sizes(SPEC, 4, 32, "fp32")
    assert fp32["frames"] == fp16["frames"] and fp32["probs"] == 2 * fp16["probs"]
    with pytest.raises(ValueError, match="fp16 or fp32"):
        io_buffer_sizes(SPEC, 4, 32, "int8")
