"""Every bundled model reproduces its own golden outputs; altered ones are caught, by name.

Torch-free: only engines are imported, and the engines run are ONNX Runtime on the CPU (FP32,
and FP16 as tests/engines/test_parity.py already holds it to the reference).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine
from defectd.engines.errors import UserError
from defectd.engines.golden import (
    GOLDEN_FRAMES,
    GOLDEN_JSON,
    GoldenError,
    golden_frames,
    read_golden,
    write_golden,
)
from defectd.engines.golden_check import check_golden
from defectd.engines.model_card import (
    InputSpec,
    bundled_model_dir,
    bundled_models,
    read_card,
    write_card,
)
from defectd.engines.postprocess import PostprocessConfig

MODELS = bundled_models()


def _engine(model_dir: Path, precision: str = "fp32") -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine.from_card(read_card(model_dir), precision, threads=2, max_batch=4)


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled default, to alter."""
    return Path(shutil.copytree(bundled_model_dir("default"), tmp_path / "model"))


def test_a_model_is_bundled() -> None:
    assert "default" in MODELS


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_bundled_model_passes_its_golden_check(name: str, precision: str) -> None:
    model_dir = bundled_model_dir(name)
    with _engine(model_dir, precision) as engine:
        report = check_golden(engine, model_dir)
    assert report.ok, "\n".join(report.lines())
    assert report.frames >= 3 and report.precision == precision
    if precision == "fp32":
        assert report.max_abs_peak <= 1e-3 and report.min_dice >= 0.99


@pytest.mark.parametrize("name", MODELS)
def test_golden_frames_cover_every_class_and_a_clean_frame(name: str) -> None:
    model_dir = bundled_model_dir(name)
    golden = read_golden(model_dir)
    if golden.source.get("kind") != "synthetic":
        # Models of real data (NEU-Seg, magnetic tile) keep a few of their own training
        # images, or smooth random frames of their input size: no class coverage is promised
        # (a weak model finds some classes on none of them), only frames that exist.
        assert golden.source.get("kind") in ("training", "random")
        assert len(golden.frames) >= 3
        return
    classes = {d.class_id for frame in golden.expected for d in frame.defects}
    assert classes == set(range(1, read_card(model_dir).num_classes + 1))
    assert any(not frame.defects for frame in golden.expected)
    assert golden.written_by["backend"] == "onnxruntime"
    assert golden.written_by["precision"] == "fp32"
    assert (model_dir / GOLDEN_FRAMES).stat().st_size < 1_500_000


def test_frames_come_from_the_line_with_every_class() -> None:
    frames, indices = golden_frames(InputSpec(), num_classes=4)
    assert frames.dtype == np.uint8 and frames.shape == (len(indices), 1, 256, 1600)
    assert 4 <= len(indices) <= 5
    again, _ = golden_frames(InputSpec(), num_classes=4)
    assert np.array_equal(frames, again)


def test_a_changed_peak_is_named_by_frame_and_class(model_copy: Path) -> None:
    path = model_copy / GOLDEN_JSON
    data = json.loads(path.read_text())
    data["frames"][2]["peak"][1] -= 0.05
    path.write_text(json.dumps(data))
    with _engine(model_copy) as engine:
        report = check_golden(engine, model_copy)
    assert not report.ok
    assert len(report.failures) == 1
    assert report.failures[0].startswith("frame 2 class 2: peak ")
    assert "> 0.001" in report.failures[0]


def test_thresholds_that_drop_a_defect_fail_with_a_hint(model_copy: Path) -> None:
    card = read_card(model_copy)
    classes = list(card.thresholds.classes)
    classes[1] = replace(classes[1], min_mask_area=10**6)  # more than a frame: class 2 goes
    write_card(replace(card, thresholds=PostprocessConfig(tuple(classes))), model_copy)
    with _engine(model_copy) as engine:
        report = check_golden(engine, model_copy)
    assert report.failures == ("frame 2 class 2: defect missing (golden: 2434 px)",)
    assert "thresholds differ" in report.notes[0]
    assert "frame 2 class 2" in report.summary() and "thresholds differ" in report.summary()


def test_a_changed_mask_fails_on_dice_and_area(model_copy: Path) -> None:
    path = model_copy / GOLDEN_JSON
    data = json.loads(path.read_text())
    defect = data["frames"][3]["defects"][0]  # class 3
    starts_lengths = [int(v) for v in defect["rle"].split()]
    half = len(starts_lengths) // 4 * 2  # keep the first half of the runs
    defect["rle"] = " ".join(map(str, starts_lengths[:half]))
    path.write_text(json.dumps(data))
    with _engine(model_copy) as engine:
        report = check_golden(engine, model_copy)
    assert [f.split(":")[0] for f in report.failures] == ["frame 3 class 3"]
    assert "Dice" in report.failures[0] and report.min_dice < 0.99


@pytest.mark.parametrize("missing", [GOLDEN_JSON, GOLDEN_FRAMES])
def test_missing_golden_files_name_the_command(model_copy: Path, missing: str) -> None:
    (model_copy / missing).unlink()
    with _engine(model_copy) as engine, pytest.raises(GoldenError) as caught:
        check_golden(engine, model_copy)
    assert isinstance(caught.value, UserError)
    assert missing in str(caught.value)
    assert f"defectd golden write --model {model_copy}" in str(caught.value)


def test_frames_that_do_not_match_the_json_are_refused(model_copy: Path) -> None:
    frames = read_golden(model_copy).frames.copy()
    frames[0, 0, 0, 0] ^= 1
    with (model_copy / GOLDEN_FRAMES).open("wb") as handle:
        np.savez_compressed(handle, frames=frames)
    with pytest.raises(GoldenError, match="does not hold the frames"):
        read_golden(model_copy)


def test_write_then_check_round_trips_given_frames(model_copy: Path) -> None:
    frames = read_golden(model_copy).frames[:2, 0]  # N×H×W is taken for 1-channel models
    with _engine(model_copy) as engine:
        write_golden(model_copy, frames, engine=engine)
        report = check_golden(engine, model_copy)
    assert report.ok and report.frames == 2
    assert read_golden(model_copy).source == {"kind": "given"}
    assert not list(model_copy.glob("*.partial"))


@pytest.mark.gpu
def test_torch_cuda_fp16_passes_the_golden_check() -> None:
    from defectd.engines.backends.torch_backend import TorchEngine

    model_dir = bundled_model_dir("default")
    card = read_card(model_dir)
    with TorchEngine.from_card(card, "cuda", "fp16", max_batch=4) as engine:
        report = check_golden(engine, model_dir)
    assert report.ok, "\n".join(report.lines())
