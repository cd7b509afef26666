"""INT8: static QDQ quantization, its parity check against FP32, and where it may run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="quantization needs defectd[int8] (the onnx package)")

from defectd.daemon.cli import main
from defectd.engines.datasets import open_dataset
from defectd.engines.errors import InvalidSetting
from defectd.engines.inference import Predictor
from defectd.engines.model_card import read_card
from defectd.engines.postprocess import ClassThresholds, PostprocessConfig
from defectd.engines.quant_parity import ClassParity, ParityReport, compare
from defectd.engines.quantize import calibration_frames
from defectd.engines.scoring import mask_dice
from defectd.engines.selection import EngineConfig, check_int8, open_engine


@pytest.fixture
def quantized(tiny_int8_model: Path) -> Path:
    return tiny_int8_model


def test_an_accepted_int8_file_is_in_the_card_with_its_figures(quantized: Path) -> None:
    card = read_card(quantized)
    card.verify()  # the INT8 file's sha256 is listed and matches
    assert card.files["int8"].path == "model.int8.onnx"
    record = card.parity["int8"]
    assert record["calibration"]["frames"] == 4
    assert record["onnxruntime"]["passed"] is True and record["onnxruntime"]["frames"] == 6
    assert record["accepted_on"] == ["onnxruntime"]
    assert not (quantized / "model.int8.candidate.onnx").exists()
    assert card.commands[-1].startswith("defectd quantize")


def test_int8_runs_on_onnxruntime_close_to_fp32(quantized: Path, tiny_data: Path) -> None:
    dataset = open_dataset(tiny_data)
    frames = dataset.read_image(dataset.image_ids[0])[None]
    config = EngineConfig(backend="onnxruntime", threads=1, max_batch=1, warmup=False)
    with (
        open_engine(quantized, config) as fp32,
        open_engine(
            quantized,
            EngineConfig(
                backend="onnxruntime", precision="int8", threads=1, max_batch=1, warmup=False
            ),
        ) as int8,
    ):
        assert int8.info.precision == "int8"
        reference, candidate = fp32.infer(frames), int8.infer(frames)
    assert np.abs(reference.probs - candidate.probs).max() < 0.25
    assert not np.array_equal(reference.probs, candidate.probs)  # it is another graph


def test_int8_is_refused_where_it_was_not_checked_or_failed(quantized: Path) -> None:
    card = read_card(quantized)
    check_int8(card, "onnxruntime")
    with pytest.raises(InvalidSetting, match="never checked on openvino"):
        check_int8(card, "openvino")
    record = json.loads((quantized / "model_card.json").read_text(encoding="utf-8"))
    record["parity"]["int8"]["onnxruntime"]["passed"] = False
    record["parity"]["int8"]["onnxruntime"]["failures"] = ["class 3 (scratches): Dice 0.8"]
    from defectd.engines.model_card import ModelCard

    failed = ModelCard.from_dict(record, quantized)
    with pytest.raises(InvalidSetting, match=r"failed parity on onnxruntime \(class 3"):
        check_int8(failed, "onnxruntime")


def test_a_model_without_int8_names_the_command(tiny_model: Path) -> None:
    with pytest.raises(InvalidSetting, match="defectd quantize"):
        open_engine(tiny_model, EngineConfig(backend="onnxruntime", precision="int8"))
    with pytest.raises(InvalidSetting, match="int8 runs on onnxruntime or openvino"):
        open_engine(tiny_model, EngineConfig(backend="torch", precision="int8", device="cpu"))


def test_calibration_frames_are_engine_sized_tiles_of_a_seeded_draw(tiny_data: Path) -> None:
    dataset = open_dataset(tiny_data)
    frames, images = calibration_frames(dataset, dataset.image_ids, (256, 512), 128, 7, seed=1)
    assert len(frames) == 7 and all(f.shape == (256, 512) for f in frames)
    assert images == 2  # a 1600 px wide frame gives 4 tiles of 512 (spread to overlap)
    again, _ = calibration_frames(dataset, dataset.image_ids, (256, 512), 128, 7, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))
    taller, _ = calibration_frames(dataset, dataset.image_ids, (300, 1600), 128, 1, seed=1)
    assert np.array_equal(taller[0][:256, :512], frames[0])  # the same first image
    assert (taller[0][256:] == 128).all()  # a frame smaller than the input: padded with grey


def test_parity_counts_every_frame_whose_classes_change(tiny_model: Path, tiny_data: Path) -> None:
    card = read_card(tiny_model)
    dataset = open_dataset(tiny_data)
    ids = dataset.image_ids[:6]
    silent = PostprocessConfig(tuple(ClassThresholds(presence=1.0, pixel=1.0) for _ in range(4)))
    config = EngineConfig(backend="onnxruntime", threads=1, max_batch=2, warmup=False)
    with open_engine(tiny_model, config) as engine:
        report = compare(
            Predictor(engine, card.thresholds), Predictor(engine, silent), dataset, ids,
            card.classes, batch_size=2,
        )  # fmt: skip
        kept = list(Predictor(engine, card.thresholds).run_images(
            ((i, dataset.read_image(i)) for i in ids), batch_size=2))  # fmt: skip
    flagged = [r for r in kept if r.defects.classes]
    assert len(report.flips) == len(flagged) > 0
    truth = [dataset.read_masks(r.image_id, r.defects.shape) for r in kept]
    for c in range(4):
        expected = np.mean(
            [mask_dice(t[c], r.defects.masks[c]) for t, r in zip(truth, kept, strict=True)]
        )
        assert report.classes[c].reference == pytest.approx(expected)
        assert report.classes[c].candidate == pytest.approx(
            np.mean([t[c].max() == 0 for t in truth])
        )
    assert not report.passed


def test_parity_failures_name_the_class_and_both_figures() -> None:
    classes = (ClassParity(1, "pits", 0.90, 0.899), ClassParity(3, "scratches", 0.80, 0.79))
    report = ParityReport("onnxruntime fp32", "onnxruntime int8", 10, 0.005, classes, ())
    assert report.failures == [
        "mean Dice 0.8445 (onnxruntime int8) against 0.8500 (onnxruntime fp32): -0.0055, "
        "beyond ±0.005",
        "class 3 (scratches): Dice 0.7900 (onnxruntime int8) against 0.8000 (onnxruntime "
        "fp32): -0.0100, beyond ±0.005",
    ]
    assert json.loads(json.dumps(report.to_dict()))["passed"] is False


def test_a_file_that_fails_parity_is_refused_and_the_card_left_alone(
    tiny_model: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    model = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    before = (model / "model_card.json").read_bytes()
    # No tolerance at all: the INT8 graph's masks differ from FP32's by some pixels.
    assert main(["quantize", "--model", str(model), "--data", str(tiny_data),
                 "--calibration", str(tiny_data), "--calibration-frames", "2",
                 "--max-frames", "6", "--tolerance", "0", "--runtimes", "onnxruntime",
                 "--threads", "1", "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "INT8 file refused, the card is unchanged: onnxruntime:" in err
    assert "class " in err and "beyond ±0.0" in err
    assert (model / "model_card.json").read_bytes() == before
    assert not list(model.glob("model.int8*.onnx"))
