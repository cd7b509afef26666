"""Post-processing cost per frame on real model output: clean frames and defective frames.

A clean frame (every class's peak below its pixel threshold, or its presence gated) must cost
≤ 0.2 ms: with the engine's per-class ``peak`` it never reads the H×W maps. A frame with
defects must cost ≤ 5 ms (components, regions, masks). The same clean frames are also timed
without ``peak``, to show what the in-graph maxima save.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from defectd.engines.backends.onnxruntime_backend import OnnxRuntimeEngine
from defectd.engines.benchmarks import BenchResult, summarise, time_calls
from defectd.engines.model_card import read_card
from defectd.engines.postprocess import postprocess
from defectd.engines.synth import SyntheticLine

SUITE = "postprocess"
CLEAN_TARGET_MS = 0.2
DEFECTIVE_TARGET_MS = 5.0


def run(
    model_dir: Path, repeats: int = 20, threads: int = 2, frames: int = 24
) -> list[BenchResult]:
    """Time `postprocess` over the model's output for `frames` synthetic frames."""
    card = read_card(model_dir)
    card.verify()
    line = SyntheticLine(seed=4242)
    images = np.stack([line.frame(i).image for i in range(frames)])
    with OnnxRuntimeEngine.from_card(card, "fp32", threads, max_batch=4) as engine:
        outputs = [engine.infer(images[i : i + 4]) for i in range(0, frames, 4)]
    clean: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    defective: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for out in outputs:
        for probs, presence, peak in zip(out.probs, out.presence, out.peak, strict=True):
            found = postprocess(probs, presence, card.thresholds, peak).classes
            (defective if found else clean).append((probs, presence, peak))
    note = f"{card.name} {card.version} output on synthetic seed 4242"
    results = []
    cases = (
        ("clean frame, with in-graph peak", clean, True, CLEAN_TARGET_MS),
        ("clean frame, without peak", clean, False, None),
        ("frame with defects", defective, True, DEFECTIVE_TARGET_MS),
    )
    for case, group, use_peak, target in cases:
        if not group:
            continue
        times: list[float] = []
        for probs, presence, peak in group:
            call = partial(
                postprocess, probs, presence, card.thresholds, peak if use_peak else None
            )
            times += time_calls(call, repeats)
        results.append(summarise(SUITE, case, times, target, f"{len(group)} frames; {note}"))
    return results
