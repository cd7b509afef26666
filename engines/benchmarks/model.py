"""Model timings on ONNX Runtime (CPU): one 1600×256 frame per call, and per frame in batches.

The embedded default must run ≤ 250 ms per frame on 2 cores; post-processing of a defective
frame is timed separately, with the thresholds from the model card.
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

SUITE = "model"
TARGET_MS = 250.0


def run(model_dir: Path, repeats: int = 20, threads: int = 2) -> list[BenchResult]:
    """Time inference (FP32 and FP16 ONNX, batch 1 and 4) and post-processing."""
    card = read_card(model_dir)
    card.verify()
    line = SyntheticLine(seed=31337)
    frames = [line.frame(i) for i in range(40)]
    defective = next(f for f in frames if len(f.classes) >= 1)
    batch = np.stack([f.image for f in frames[:4]])
    note = f"{card.name} {card.version}, ORT {threads} threads"
    results = []
    for precision in ("fp32", "fp16"):
        if precision not in card.files:
            continue
        engine = OnnxRuntimeEngine.from_card(card, precision, threads)
        one = time_calls(partial(engine.infer, defective.image[None]), repeats, warmup=2)
        four = time_calls(partial(engine.infer, batch), max(3, repeats // 2), warmup=1)
        results.append(summarise(SUITE, f"{precision} ONNX, batch 1", one, TARGET_MS, note))
        per_frame = [t / len(batch) for t in four]
        results.append(
            summarise(SUITE, f"{precision} ONNX, batch 4 (per frame)", per_frame, TARGET_MS, note)
        )
    engine = OnnxRuntimeEngine.from_card(card, "fp32", threads)
    output = engine.infer(defective.image[None])
    post = time_calls(
        lambda: postprocess(output.probs[0], output.presence[0], card.thresholds), repeats * 5
    )
    classes = ", ".join(map(str, defective.classes))
    results.append(
        summarise(SUITE, "post-processing, 1 frame", post, None, f"frame with class {classes}")
    )
    return results
