"""Synthetic line timings: one 1600×256 frame, alone and with JPEG encoding (target ≤ 5 ms).

Measured with OpenCV on one thread, so the number is per core: what each worker of a
multi-process dataset writer or training loader gets.
"""

from __future__ import annotations

import itertools

import cv2

from defectd.engines.benchmarks import BenchResult, summarise, time_calls
from defectd.engines.synth import SyntheticLine

SUITE = "synth"
TARGET_MS = 5.0
JPEG_QUALITY = 95


def run(repeats: int = 200) -> list[BenchResult]:
    """Time `SyntheticLine.frame` (a new index each call) and frame + JPEG encode."""
    line = SyntheticLine(seed=0)
    indices = itertools.count()
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]

    def generate() -> object:
        return line.frame(next(indices))

    def generate_and_encode() -> object:
        return cv2.imencode(".jpg", line.frame(next(indices)).image, params)

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        generate_ms = time_calls(generate, repeats)
        encode_ms = time_calls(generate_and_encode, repeats)
    finally:
        cv2.setNumThreads(threads)
    note = "1 OpenCV thread"
    return [
        summarise(SUITE, "frame (generate only)", generate_ms, TARGET_MS, note),
        summarise(SUITE, f"frame + JPEG encode (q{JPEG_QUALITY})", encode_ms, None, note),
    ]
