"""`export_model`: files, card, and the parity the issue requires, measured on fresh frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export needs defectd[train] (torch)")

from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine  # noqa: E402
from defectd.engines.golden import (  # noqa: E402
    GOLDEN_FRAMES,
    GOLDEN_JSON,
    read_golden,
)
from defectd.engines.golden_check import check_golden  # noqa: E402
from defectd.engines.model_card import read_card  # noqa: E402
from defectd.engines.synth import SyntheticLine  # noqa: E402
from defectd.training.export import ExportError, export_model  # noqa: E402
from defectd.training.model.graph import InferenceGraph  # noqa: E402
from defectd.training.trainer import load_checkpoint  # noqa: E402


def test_card_lists_files_thresholds_and_commands(tiny_model: Path) -> None:
    card = read_card(tiny_model)
    card.verify()
    assert set(card.files) == {"fp32", "fp16", "torch"}
    assert card.input.shape == (256, 1600) and card.input.dtype == "uint8"
    assert card.outputs == ("probs", "presence", "peak")
    assert card.classes == ("pits", "crazing", "scratches", "patches")
    assert card.commands == ("defectd train (test fixture)", "defectd export (test fixture)")
    assert card.parity["onnx_fp32_vs_torch"]["max_abs_diff_probs"] <= 1e-4
    assert card.training["best_epoch"] in (1, 2, 3)


def test_parity_on_frames_export_never_saw(tiny_run: Path, tiny_model: Path) -> None:
    model, (mean, std), _ = load_checkpoint(tiny_run)
    graph = InferenceGraph(model, mean, std).eval()
    line = SyntheticLine(98765)
    frames = np.stack([line.frame(i).image for i in range(3)])[:, None]
    with torch.inference_mode():
        probs, presence, _ = graph(torch.from_numpy(frames))
    card = read_card(tiny_model)
    fp32 = OnnxRuntimeEngine.from_card(card, "fp32", threads=1).infer(frames)
    fp16 = OnnxRuntimeEngine.from_card(card, "fp16", threads=1).infer(frames)
    assert np.abs(fp32.probs - probs.numpy()).max() <= 1e-4
    assert np.abs(fp32.presence - presence.numpy()).max() <= 1e-4
    assert np.abs(fp16.probs.astype(np.float32) - fp32.probs).max() <= 1e-2
    same = ((fp16.probs >= 0.5) == (fp32.probs >= 0.5)).mean()
    assert same >= 0.999


def test_export_writes_golden_outputs_that_pass(tiny_model: Path) -> None:
    assert (tiny_model / GOLDEN_JSON).is_file() and (tiny_model / GOLDEN_FRAMES).is_file()
    golden = read_golden(tiny_model)
    assert golden.written_by["backend"] == "onnxruntime"
    assert golden.written_by["precision"] == "fp32" and golden.written_by["device"] == "cpu"
    assert golden.frames.shape[1:] == (1, 256, 1600) and 4 <= len(golden.frames) <= 5
    card = read_card(tiny_model)
    for precision in ("fp32", "fp16"):
        with OnnxRuntimeEngine.from_card(card, precision, threads=1) as engine:
            report = check_golden(engine, tiny_model)
        assert report.ok, "\n".join(report.lines())


def test_refuses_to_overwrite(tiny_run: Path, tiny_model: Path) -> None:
    with pytest.raises(ExportError, match="--force"):
        export_model(tiny_run, tiny_model, "x", "0", "cmd")
