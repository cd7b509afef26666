"""The shadow thread: the share of frames it takes, and a real engine compared with itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from defectd.daemon.config import parse_config
from defectd.daemon.metrics import create_metrics
from defectd.daemon.shadow.runner import ShadowFrame, ShadowRunner, ShadowSampler
from defectd.daemon.shadow.store import ShadowStore
from defectd.daemon.stages.model_swap import open_model
from defectd.engines.model_card import default_model_dir
from defectd.engines.synth import SyntheticLine
from defectd.engines.tiled_engine import TiledFrames, plan_frames


@pytest.mark.parametrize(("share", "taken"), [(1.0, 100), (0.25, 25), (0.1, 10), (0.3, 30)])
def test_sampler_takes_its_share_evenly(share: float, taken: int) -> None:
    sampler = ShadowSampler(share)
    picks = [index for index in range(100) if sampler.take()]
    assert len(picks) == taken
    gaps = np.diff(picks)
    assert gaps.max() - gaps.min() <= 1  # spread out, not in bursts


def test_sampler_refuses_a_share_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        ShadowSampler(0.0)


def test_the_live_model_as_its_own_shadow_agrees_everywhere(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    mapping = {
        "line": {"name": "line1"},
        "cameras": [
            {"id": "cam0", "endpoint": "tcp://127.0.0.1:5555", "width": 1600, "height": 256}
        ],
        "engine": {"backend": "onnxruntime", "precision": "fp32", "max_batch": 1, "threads": 1},
        "model": {"dir": str(default_model_dir())},
    }
    config = parse_config(mapping, "test.yaml", environ={})
    live, shadow = open_model(config, golden=False), open_model(config, golden=False)
    registry = CollectorRegistry()
    metrics = create_metrics(["cam0"], registry=registry)
    store = ShadowStore(tmp_path / "shadow")
    run = store.begin("line1", live.label, shadow.label, 1.0, tuple(live.card.classes))
    runner = ShadowRunner(shadow, store, metrics, run_id=run, queue_size=4, max_saved=10)
    tiled = TiledFrames(live.engine, plan_frames((256, 1600), live.engine.input.shape, 1), 0)
    frames = [SyntheticLine(7).frame(index) for index in range(3)]
    try:
        for seq, frame in enumerate(frames):
            output = tiled.infer(frame.image[np.newaxis])
            runner.offer(
                ShadowFrame(
                    "cam0",
                    seq,
                    1000 + seq,
                    frame.image.copy(),
                    np.array(output.probs[0]),
                    tuple(np.asarray(output.presence[0], np.float64).tolist()),
                    tuple(np.asarray(output.peak[0], np.float64).tolist()),
                    live.thresholds,
                )
            )
    finally:
        runner.close()
        live.engine.close()
    rows = list(store.comparisons(run))
    assert len(rows) == 3 * len(live.card.classes) and runner.compared == 3
    assert any(r.row.live_found for r in rows)  # the frames hold defects
    for stored in rows:
        row = stored.row
        assert row.live_px == row.shadow_px == row.both_px and not row.disagrees
        assert stored.picture is None
    assert registry.get_sample_value("defectd_shadow_frames_total") == 3
    found = sum(
        registry.get_sample_value(
            "defectd_shadow_found_total", {"class_name": name, "outcome": "both"}
        )
        or 0
        for name in live.card.classes
    )
    assert found == sum(r.row.live_found for r in rows)
