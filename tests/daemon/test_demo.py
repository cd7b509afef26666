"""`defectd demo`: the real daemon on a short simulated line, scored against the truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main
from defectd.daemon.tools.demo import DemoConfig, predicted_labels, run_demo, truth_of
from defectd.engines.labels import LabelTable, read_labels
from defectd.engines.scoring import score

SHAPE = (256, 1600)


def test_published_masks_join_the_truth_by_camera_and_seq() -> None:
    frames = [{"camera_id": "cam0", "seq": 0}, {"camera_id": "cam1", "seq": 0}]
    defects = [
        {"camera_id": "cam1", "seq": 0, "class_id": 3, "rle": "1 10"},
        {"camera_id": "cam0", "seq": 9, "class_id": 1, "rle": "5 5"},  # no summary: left out
    ]
    predicted = predicted_labels(frames, defects, 4)
    assert predicted.masks == {"cam0-0.jpg": [""] * 4, "cam1-0.jpg": ["", "", "1 10", ""]}
    truth = LabelTable(num_classes=4)
    truth.set("cam1-0.jpg", 3, "1 10")
    truth.set("cam0-7.jpg", 2, "1 4")  # sent but not processed: not scored
    report = score(truth_of(truth, sorted(predicted.masks)), predicted, shape=SHAPE)
    assert report.images == 2 and report.mean_dice == 1.0
    assert report.classes[2].recall == 1.0 and report.classes[0].recall is None


@pytest.mark.slow
def test_null_engine_demo_accounts_for_every_frame_and_scores_it(tmp_path: Path) -> None:
    config = DemoConfig(
        out=tmp_path, backend="null", cameras=2, fps=20.0, frames=8, seconds=None, seed=3
    )
    summary = run_demo(config)
    assert summary.daemon_exit == 0 and not summary.stopped and summary.notes == []
    assert summary.sent == summary.received == summary.processed == summary.summaries == 16
    assert summary.dropped == {} and summary.lost == 0 and summary.missed_messages == 0
    assert set(summary.latency_ms) == {"p50", "p90", "p99", "max"}
    assert summary.engine.startswith("null")
    # The null engine finds nothing: a pair scores 1 exactly where the truth is clean too.
    truth = read_labels(tmp_path / "truth.csv", 4, SHAPE)
    assert len(truth.masks) == 16
    clean_pairs = sum(not rle for row in truth.masks.values() for rle in row)
    assert summary.scored_frames == 16
    assert summary.mean_dice == pytest.approx(clean_pairs / 64)
    assert [c.events for c in summary.classes] == [0, 0, 0, 0]
    assert (tmp_path / "daemon.log").read_text().count("stopped: received 16, processed 16") == 1
    # 8 frames a camera, a coil every 40: one coil, closed by the stop, clean, reported.
    (coil,) = summary.coils
    assert (coil.coil_id, coil.defects, coil.end_reason) == ("DEMO-00001", 0, "shutdown")
    assert coil.inspected_m == pytest.approx(8 * 256 * 0.5 / 1000) and coil.grade == "A"
    assert (Path(coil.report) / "map.png").is_file()


@pytest.mark.slow
def test_onnxruntime_demo_command_prints_and_writes_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_out = tmp_path / "summary.json"
    args = ["demo", "--out", str(tmp_path / "demo"), "--frames", "3", "--fps", "10"]
    args += ["--coil-frames", "2"]
    args += ["--max-batch", "2", "--threads", "1", "--seed", "5", "--quiet"]
    assert main([*args, "--json", str(json_out)]) == 0
    printed = capsys.readouterr().out
    assert "frames: sent 6, received 6, processed 6, dropped none" in printed
    assert "Kaggle mean Dice" in printed and "latency capture→publish: p50" in printed
    written = json.loads(json_out.read_text())
    assert written["engine"].startswith("onnxruntime")
    assert written["scored_frames"] == written["processed"] == 6
    assert [c["name"] for c in written["classes"]] == ["pits", "crazing", "scratches", "patches"]
    # The bundled model on its own synthetic line: far better than predicting nothing.
    truth = read_labels(tmp_path / "demo" / "truth.csv", 4, SHAPE)
    nothing = sum(not rle for row in truth.masks.values() for rle in row) / 24
    assert written["mean_dice"] > max(0.5, nothing)
    found = {c["name"]: c["events"] for c in written["classes"]}
    assert sum(found.values()) == sum(c["predicted_images"] for c in written["classes"])
    assert written["daemon_log"].endswith("daemon.log")
    # Coils of 2 frames: the first closed by the next coil, the second by the stop.
    assert [(c["coil_id"], c["end_reason"]) for c in written["coils"]] == [
        ("DEMO-00001", "next_coil"),
        ("DEMO-00002", "shutdown"),
    ]
    assert "coils (defect store; a report folder each" in printed
