"""Harmless marks: oil spots, water stains and roll marks. Never defects, never labelled.

Real strip carries plenty of these and a detector must not fire on them, so the line paints
them (away from every label) and reports where, for false-alarm checks, but never labels them.
Each painter returns a float32 delta for an ROI; the caller adds it and records its footprint.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.synth.texture import blur

Float32Array = npt.NDArray[np.float32]
MarkPainter = Callable[[np.random.Generator], Float32Array]

FOOTPRINT_LEVEL = 1.5  # |delta| above this many grey levels counts as the mark's footprint


def oil_spot(rng: np.random.Generator) -> Float32Array:
    """A soft, smooth, slightly dark ellipse: no edge, no texture of its own."""
    rx, ry = rng.uniform(6, 40), rng.uniform(6, 40)
    sigma = 0.35 * min(rx, ry)
    pad = int(3 * sigma) + 2
    h, w = int(2 * (ry + pad)), int(2 * (rx + pad))
    delta = np.zeros((h, w), np.float32)
    centre = (w // 2, h // 2)
    cv2.ellipse(delta, centre, (int(rx), int(ry)), rng.uniform(0, 180), 0, 360, 1.0, -1)
    delta = blur(delta, sigma)
    return delta * np.float32(-rng.uniform(12, 30))


def water_stain(rng: np.random.Generator) -> Float32Array:
    """A faint irregular ring, the dried edge of a water drop, with a slightly paler inside."""
    r = rng.uniform(12, 45)
    angles = np.linspace(0.0, 2 * np.pi, 24, endpoint=False)
    radius = r * (1 + 0.15 * rng.standard_normal(24).cumsum() / 4)
    aspect = rng.uniform(0.6, 1.4)
    pad = 8
    size = int(2 * (radius.max() * max(aspect, 1.0) + pad))
    pts = np.stack(
        (size / 2 + radius * np.cos(angles) * aspect, size / 2 + radius * np.sin(angles) / aspect),
        axis=1,
    )
    ring = np.zeros((size, size), np.float32)
    pts_i = [np.round(pts).astype(np.int32)]
    cv2.fillPoly(ring, pts_i, 0.25)
    cv2.polylines(ring, pts_i, True, 1.0, int(rng.integers(2, 5)))
    ring = blur(ring, rng.uniform(1.0, 2.5))
    return ring * np.float32(rng.choice([-1.0, 1.0]) * rng.uniform(8, 20))


def roll_mark(rng: np.random.Generator) -> Float32Array:
    """Faint imprints repeated along the rolling direction at a roll's pitch."""
    w, h = int(rng.uniform(15, 60)), int(rng.uniform(3, 10))
    pitch = int(rng.uniform(40, 110))
    repeats = int(rng.integers(2, 4))
    delta = np.zeros((pitch * (repeats - 1) + h + 12, w + 12), np.float32)
    amp = float(rng.choice([-1.0, 1.0]) * rng.uniform(10, 22))
    for k in range(repeats):
        y = 6 + k * pitch
        cv2.ellipse(delta, (6 + w // 2, y + h // 2), (w // 2, max(h // 2, 1)), 0, 0, 360, amp, -1)
    return blur(delta, 1.5)


MARK_PAINTERS: dict[str, MarkPainter] = {
    "oil spot": oil_spot,
    "water stain": water_stain,
    "roll mark": roll_mark,
}
