"""RLE encode/decode timings on 256×1600 masks (target: ≤ 1 ms each)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import cv2
import numpy as np

from defectd.engines.benchmarks import BenchResult, summarise, time_calls
from defectd.engines.labels import read_labels
from defectd.engines.rle import SEVERSTAL_SHAPE, decode, encode

TARGET_MS = 1.0


def _polygon_mask(rng: np.random.Generator, area_px: int) -> np.ndarray:
    """A filled irregular polygon of roughly `area_px` pixels, like a Severstal label."""
    mask = np.zeros(SEVERSTAL_SHAPE, np.uint8)
    radius = np.sqrt(area_px / np.pi)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 14))
    radii = radius * rng.uniform(0.7, 1.3, angles.size)
    centre = (800, 128)
    points = np.stack(
        (centre[0] + radii * np.cos(angles) * 1.5, centre[1] + radii * np.sin(angles) / 1.5),
        axis=1,
    ).astype(np.int32)
    cv2.fillPoly(mask, [points], 1)
    return mask


def _cases(labels: Path | None) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    speckle = (rng.random(SEVERSTAL_SHAPE) < 0.01).astype(np.uint8)
    cases = [
        ("empty mask", np.zeros(SEVERSTAL_SHAPE, np.uint8)),
        ("polygon 10k px", _polygon_mask(rng, 10_000)),
        ("polygon 80k px", _polygon_mask(rng, 80_000)),
        ("1% speckle (worst case, ~4k runs)", speckle),
    ]
    if labels is not None:
        rows = sorted(
            (rle for row in read_labels(labels).masks.values() for rle in row if rle), key=len
        )
        cases += [
            ("real label, median length", decode(rows[len(rows) // 2])),
            ("real label, longest", decode(rows[-1])),
        ]
    return cases


def run(repeats: int = 300, labels: Path | None = None) -> list[BenchResult]:
    """Time encode and decode per case; `labels` adds real Severstal strings as cases."""
    results = []
    for name, mask in _cases(labels):
        rle = encode(mask)
        runs = len(rle.split()) // 2
        note = f"{runs} runs"
        results.append(
            summarise(
                "rle",
                f"encode, {name}",
                time_calls(partial(encode, mask), repeats),
                TARGET_MS,
                note,
            )
        )
        results.append(
            summarise(
                "rle",
                f"decode, {name}",
                time_calls(partial(decode, rle), repeats),
                TARGET_MS,
                note,
            )
        )
    return results
