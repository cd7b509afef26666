"""engine.backend auto on a CPU: the fastest engine build-engine measured, keyed to the model."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from defectd.daemon.cli import main
from defectd.engines.cpu_choice import candidates, measure_choice, read_choice, write_choice
from defectd.engines.model_card import read_card
from defectd.engines.selection import EngineConfig, open_engine


def test_the_measured_choice_is_what_auto_opens(
    tiny_int8_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    card = read_card(tiny_int8_model)
    usable, skipped = candidates(card, openvino=False)
    assert usable == ["onnxruntime fp32", "onnxruntime int8"]
    assert skipped["openvino fp32"].startswith("openvino not installed")
    choice = measure_choice(card, threads=1, batch=1, openvino=False, seconds=0.3, rounds=1)
    assert set(choice.frames_per_s) == set(usable)
    fastest = max(choice.frames_per_s, key=lambda name: choice.frames_per_s[name])
    assert f"{choice.backend} {choice.precision}" == fastest
    write_choice(tmp_path, choice)
    assert read_choice(tmp_path, card, 1, 1) == choice
    assert read_choice(tmp_path, card, 2, 1) is None  # another thread count: not this record
    config = EngineConfig(threads=1, max_batch=1, cache_dir=str(tmp_path), warmup=False)
    with caplog.at_level(logging.INFO), open_engine(tiny_int8_model, config) as engine:
        assert (engine.info.backend, engine.info.precision) == (choice.backend, choice.precision)
    assert "measured by `defectd build-engine`" in caplog.text


def test_without_a_record_auto_runs_fp32_and_says_how_to_measure(
    tiny_int8_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = EngineConfig(threads=1, max_batch=1, cache_dir=str(tmp_path), warmup=False)
    with caplog.at_level(logging.INFO), open_engine(tiny_int8_model, config) as engine:
        assert (engine.info.backend, engine.info.precision) == ("onnxruntime", "fp32")
    assert "defectd build-engine --model" in caplog.text and "--cpu" in caplog.text


def test_build_engine_records_the_choice_once(
    tiny_int8_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import defectd.engines.cpu_choice as cpu_choice

    real = cpu_choice.measure_choice
    monkeypatch.setattr(  # a short timing: the choice itself is tested above
        cpu_choice, "measure_choice", lambda *a, **k: real(*a, **k, seconds=0.3, rounds=1)
    )
    args = ["build-engine", "--model", str(tiny_int8_model), "--cpu", "--cache-dir",
            str(tmp_path), "--threads", "1", "--max-batch", "1"]  # fmt: skip
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "CPU engine recorded: onnxruntime" in first and "frames/s" in first
    assert main(args) == 0
    assert "CPU engine already recorded" in capsys.readouterr().out
    assert len(list(tmp_path.glob("cpu-choice-*.json"))) == 1


def test_a_model_with_one_cpu_engine_has_nothing_to_measure(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import defectd.engines.backends.openvino_backend as openvino_backend

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(openvino_backend, "openvino_available", lambda: False)
    try:
        assert main(["build-engine", "--model", str(tiny_model), "--cpu", "--cache-dir",
                     str(tmp_path)]) == 0  # fmt: skip
    finally:
        monkeypatch.undo()
    assert "nothing to measure" in capsys.readouterr().out
