"""Opening a candidate model for a swap: every reason it is refused, and the loader thread."""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from defectd.daemon.config import DaemonConfig, parse_config
from defectd.daemon.stages.model_swap import (
    ModelLoader,
    ServingModel,
    SwapError,
    memory_verdict,
    open_model,
)
from defectd.daemon.tools.model_variants import degraded_copy, renamed_copy
from defectd.engines.model_card import bundled_model_dir, default_model_dir, read_card

ONNX = {"backend": "onnxruntime", "precision": "fp32", "max_batch": 1, "threads": 1}
pytest.importorskip("onnxruntime")


def config_for(model_dir: Path) -> DaemonConfig:
    mapping = {
        "line": {"name": "line1"},
        "cameras": [
            {"id": "cam0", "endpoint": "tcp://127.0.0.1:5555", "width": 1600, "height": 256}
        ],
        "engine": ONNX,
        "model": {"dir": str(model_dir)},
    }
    return parse_config(mapping, "test.yaml", environ={})


def test_a_copy_with_the_same_weights_opens_and_passes_its_golden_check(tmp_path: Path) -> None:
    card = read_card(default_model_dir())
    copy = renamed_copy(default_model_dir(), tmp_path / "b", "9.9.9")
    model = open_model(config_for(copy), classes=tuple(card.classes))
    try:
        assert model.label == f"{card.name} 9.9.9"
        assert model.golden.startswith("golden check ok")
        assert model.same_engine(config_for(copy)) and not model.same_engine(
            config_for(default_model_dir())
        )
    finally:
        model.engine.close()


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs onnx ([int8])")
def test_other_weights_fail_the_golden_check(tmp_path: Path) -> None:
    worse = degraded_copy(default_model_dir(), tmp_path / "worse", noise=0.5)
    with pytest.raises(SwapError) as caught:
        open_model(config_for(worse))
    assert caught.value.reason == "golden" and "golden mismatch" in str(caught.value)


def test_a_model_with_other_classes_needs_a_restart() -> None:
    other = bundled_model_dir("neu-seg")
    live = tuple(read_card(default_model_dir()).classes)
    with pytest.raises(SwapError) as caught:
        open_model(replace(config_for(default_model_dir()), model=replace(
            config_for(default_model_dir()).model, dir=other)), classes=live)  # fmt: skip
    assert caught.value.reason == "classes" and "needs a restart" in str(caught.value)


def test_a_changed_file_fails_the_card_check(tmp_path: Path) -> None:
    copy = renamed_copy(default_model_dir(), tmp_path / "b", "9.9.9")
    card_path = copy / "model_card.json"
    card = json.loads(card_path.read_text())
    card["files"]["fp32"]["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(SwapError) as caught:
        open_model(config_for(copy))
    assert caught.value.reason == "card" and "sha256" in str(caught.value)


def test_memory_for_a_second_engine() -> None:
    gib = 2**30
    assert memory_verdict(2 * gib, 10 * gib) is None
    assert memory_verdict(2 * gib, None) is None  # unknown: not refused
    verdict = memory_verdict(2 * gib, 2 * gib)
    assert verdict is not None and "2048 MiB free" in verdict and "2458 MiB" in verdict


def test_loader_reports_the_model_or_the_error_once() -> None:
    config = config_for(default_model_dir())
    calls: list[str] = []

    def failing(given: DaemonConfig) -> ServingModel:
        calls.append(str(given.model.dir))
        raise SwapError("open", "no GPU here")

    loader = ModelLoader(failing)
    assert loader.poll() is None and not loader.busy
    loader.start(config, 3)
    with pytest.raises(RuntimeError):
        loader.start(config, 4)  # one at a time
    deadline = time.monotonic() + 10
    while (done := loader.poll()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert done.generation == 3 and done.model is None and done.error is not None
    assert done.error.reason == "open" and calls == [str(default_model_dir())]
    assert loader.poll() is None and not loader.busy

    def crashing(given: DaemonConfig) -> ServingModel:
        raise KeyError("a bug in a backend")

    loader = ModelLoader(crashing)
    loader.start(config, 5)
    while (done := loader.poll()) is None:
        time.sleep(0.01)
    assert done.error is not None and "KeyError" in str(done.error)
