"""The four defect classes: label outlines and the painters that fill them.

A component is made label-first: an outline polygon of the wanted area (Severstal labels are
coarse polygons drawn generously around a defect), then the defect is painted inside the
outline, kept a few pixels off its edge. So the label is a hull around what is painted and its
area is under control. Painters work on the component's bounding-box ROI only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.synth.stats import COMPONENT_SHAPES
from defectd.engines.synth.texture import blur, resize

Float32Array = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]
Polygon = npt.NDArray[np.float64]  # (N, 2) x, y

_BLOB_ROUGHNESS = {1: 0.10, 4: 0.28}  # class 4 labels are ragged (fill 0.65 vs 0.78)


def _blob(rng: np.random.Generator, roughness: float) -> Polygon:
    """A closed irregular blob around the origin, roughly the unit circle."""
    angles = np.linspace(0.0, 2 * np.pi, 40, endpoint=False) + rng.uniform(0, 0.15, 40)
    radius = np.ones_like(angles)
    for k in range(2, 7):
        radius += roughness * rng.normal() / k**0.7 * np.cos(k * angles + rng.uniform(0, 6.3))
    radius += 0.25 * roughness * rng.standard_normal(angles.size)
    radius = np.clip(radius, 0.35, None)
    return np.stack((radius * np.cos(angles), radius * np.sin(angles)), axis=1)


def _band(
    rng: np.random.Generator, height: float, taper: tuple[bool, bool]
) -> tuple[Polygon, Polygon]:
    """A slightly slanted band along y in [0, height]: its left and right edges at unit width.

    Returned as centre line and half-width profile (both (N, 2) with y in column 1), so the
    caller can scale the width alone.
    """
    n = max(4, int(height // 12) + 2)
    y = np.linspace(0.0, height, n)
    t = y / height
    centre = rng.uniform(-0.08, 0.08) * y + np.cumsum(rng.normal(0.0, 0.4, n))
    half = np.exp(np.cumsum(rng.normal(0.0, 0.08, n)))
    half /= half.mean() * 2.0
    if taper[0]:
        half *= np.clip(t / 0.15, 0.15, 1.0)
    if taper[1]:
        half *= np.clip((1 - t) / 0.15, 0.15, 1.0)
    return np.stack((centre, y), axis=1), np.stack((half, y), axis=1)


@dataclass(frozen=True)
class Outline:
    """A component's label polygon, its bounding box starting at (0, 0)."""

    polygon: Polygon
    anchor: int  # -1: belongs flush on the top frame edge, +1: on the bottom, 0: anywhere
    is_band: bool  # bands keep their height; blobs may hang over a frame edge


def outline(
    rng: np.random.Generator, class_id: int, area: float, frame_height: int, flush: bool
) -> Outline:
    """A label outline of `area` px for one component of class `class_id`.

    `flush` asks for a component that touches the top or bottom frame edge, as about half of
    real class 2-4 components do: bands then run untapered into that edge; the caller hangs
    blobs partly over it.
    """
    shape = COMPONENT_SHAPES[class_id]
    # Bands (classes 2, 3) run along the rolling direction: never wider than tall.
    low = -2.5 if class_id in _BLOB_ROUGHNESS else 0.0
    aspect = float(
        np.exp(np.clip(rng.normal(shape.log_aspect_mean, shape.log_aspect_std), low, 3.5))
    )
    width = np.sqrt(area / (shape.fill * aspect))
    height = min(aspect * width, float(frame_height))
    if class_id in _BLOB_ROUGHNESS:
        poly = _blob(rng, _BLOB_ROUGHNESS[class_id])
        poly *= np.array([width, height]) / (np.ptp(poly, axis=0) + 1e-9)
        poly *= np.sqrt(area / max(cv2.contourArea(poly.astype(np.float32)), 1.0))
        if np.ptp(poly[:, 1]) > frame_height:
            squeeze = frame_height / np.ptp(poly[:, 1])
            poly *= np.array([1.0 / squeeze, squeeze])
        anchor = int(rng.choice([-1, 1])) if flush else 0
        return Outline(poly - poly.min(axis=0), anchor, is_band=False)
    height = min(height, area / (3.0 * shape.fill))  # at least ~3 px wide
    top = bool(rng.random() < 0.5)
    full = height >= frame_height - 1
    taper = (not (full or (flush and top)), not (full or (flush and not top)))
    centre, half = _band(rng, height, taper)
    # A band's area is linear in its width: one rescale hits the target.
    half[:, 0] *= area / max(2.0 * float(np.trapezoid(half[:, 0], half[:, 1])), 1e-3)
    left = centre - half * np.array([1.0, 0.0])
    right = centre + half * np.array([1.0, 0.0])
    poly = np.concatenate((left, right[::-1]))
    anchor = -1 if full else (-1 if top else 1) if flush else 0
    return Outline(poly - poly.min(axis=0), anchor, is_band=True)


def _inside(label: UInt8Array, margin: int) -> UInt8Array:
    """The label shrunk by `margin` px: where paint may go, so the label stays generous."""
    if margin <= 0:
        return label
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    inner = np.asarray(cv2.erode(label, kernel), np.uint8)
    return inner if inner.any() else label


def _coarse_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> Float32Array:
    """Smooth noise of unit-ish std over `shape`, from a grid of `cell`-px cells."""
    h, w = shape
    small = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    return resize(small, (w, h), cv2.INTER_CUBIC)


def paint_pits(rng: np.random.Generator, image: Float32Array, label: UInt8Array) -> None:
    """Class 1: a cluster of small bright and dark pits, over a faint shade."""
    inner = _inside(label, 2)
    ys, xs = np.nonzero(inner)
    count = int(np.clip(ys.size / rng.uniform(20, 45), 3, 600))
    pick = rng.integers(0, ys.size, count)
    ys, xs = ys[pick], xs[pick]
    bright = rng.random(count) < rng.uniform(0.3, 0.9)
    amp = np.where(bright, rng.uniform(60, 130, count), -rng.uniform(50, 90, count))
    delta = np.zeros(label.shape, np.float32)
    delta[ys, xs] = amp
    big = rng.random(count) < 0.5  # 2-3 px pits next to 1 px ones
    h, w = label.shape
    delta[np.minimum(ys[big] + 1, h - 1), xs[big]] = amp[big]
    delta[ys[big], np.minimum(xs[big] + 1, w - 1)] = amp[big]
    delta = blur(delta, 0.6) * 1.6
    delta += rng.uniform(-12, 8) * blur(inner.astype(np.float32), 3.0)
    image += delta * label


def paint_crazing(rng: np.random.Generator, image: Float32Array, label: UInt8Array) -> None:
    """Class 2: a network of short, thin, dark cracks inside a compact region.

    Crazing labels are often thin strips (height/width ≈ 8): the paint margin shrinks with the
    label so a strip still holds visible cracks (a 2-px margin left a 6-px strip almost bare,
    labels with nothing to see), and the crack count follows the label's area.
    """
    area = int(label.sum())
    inner = next(
        (m for m in (_inside(label, 2), _inside(label, 1)) if m.sum() >= 0.5 * area), label
    )
    ys, xs = np.nonzero(inner)
    count = int(np.clip(area / rng.uniform(50, 110), 6, 150))
    pick = rng.integers(0, ys.size, count)
    steps = int(rng.integers(3, 7))
    heading = rng.uniform(0, np.pi, count)[:, None] + np.cumsum(
        rng.normal(0.0, 0.6, (count, steps)), axis=1
    )
    length = rng.uniform(2.0, 7.0, (count, steps))
    path_x = xs[pick][:, None] + np.cumsum(length * np.cos(heading), axis=1)
    path_y = ys[pick][:, None] + np.cumsum(length * np.sin(heading), axis=1)
    start = np.stack((xs[pick], ys[pick]), axis=1)[:, None, :]
    paths = np.concatenate((start, np.stack((path_x, path_y), axis=2)), axis=1)
    cracks = list(np.round(paths).astype(np.int32))
    delta = np.zeros(label.shape, np.float32)
    cv2.polylines(delta, cracks, False, -rng.uniform(45, 85), 1)
    delta = blur(delta, 0.5)
    delta -= rng.uniform(3, 10) * blur(inner.astype(np.float32), 4.0)
    image += delta * inner


def paint_scratches(rng: np.random.Generator, image: Float32Array, label: UInt8Array) -> None:
    """Class 3: thin scratches and streaks running along the band the label outlines."""
    h, w = label.shape
    rows = np.flatnonzero(label.any(axis=1))
    left = label[rows].argmax(axis=1).astype(np.float64)
    right = (w - 1 - label[rows, ::-1].argmax(axis=1)).astype(np.float64)
    centre = np.convolve(np.pad((left + right) / 2, 4, mode="edge"), np.ones(9) / 9, "valid")
    width = float(np.median(right - left))
    delta = np.zeros(label.shape, np.float32)
    lines = 1 + int(rng.integers(0, 1 + int(width) // 16))
    sign = -1.0 if rng.random() < 0.65 else 1.0
    for _ in range(lines):
        offset = rng.uniform(-0.3, 0.3) * width
        x = centre + offset + np.cumsum(rng.normal(0.0, 0.12, rows.size))
        pts = np.round(np.stack((x, rows), axis=1)).astype(np.int32)
        amp = sign * rng.uniform(40, 90) if rng.random() < 0.85 else -sign * rng.uniform(25, 60)
        thickness = int(rng.integers(1, 4))
        amp *= 1.6 if thickness == 1 else 1.0  # the blur below flattens 1-px lines most
        cv2.polylines(delta, [pts], False, float(amp), thickness)
    # Scratches fade in and out along their length.
    fade = np.clip(0.85 + 0.35 * _coarse_noise(rng, (h, 1), 24)[:, 0], 0.5, 1.2)
    delta *= fade[:, None]
    if width > 12:  # wide streaks also change the shade of the whole band
        shade = sign * rng.uniform(6, 20) * _coarse_noise(rng, (h, w), 16).clip(0.3, 1.5)
        delta += shade * blur(label.astype(np.float32), 3.0)
    image += blur(delta, 0.6) * _inside(label, 2)


def paint_patch(rng: np.random.Generator, image: Float32Array, label: UInt8Array) -> None:
    """Class 4: a large dark, textured patch with a ragged rim; sometimes a near-black hole."""
    h, w = label.shape
    margin = int(np.clip(min(h, w) * 0.05, 2, 6))
    inner = _inside(label, margin).astype(np.float32)
    body = blur(inner, rng.uniform(1.0, 2.5)) * label
    keep = rng.uniform(0.35, 0.75)  # remaining brightness inside the patch
    texture = rng.uniform(5, 14) * _coarse_noise(rng, (h, w), int(rng.integers(6, 20)))
    streaks = rng.uniform(0, 6) * _coarse_noise(rng, (1, w), 3)[0]
    rim = rng.uniform(-25, 10) * 4.0 * body * (1.0 - body)
    image *= 1.0 - body * (1.0 - keep)
    image += body * (texture + streaks[None, :]) + rim
    if rng.random() < 0.25:
        hole = _inside(label, max(margin, int(min(h, w) * 0.25))).astype(np.float32)
        if hole.any() and hole.sum() < inner.sum():
            hole = blur(hole, 1.0)
            image *= 1.0 - hole
            image += hole * rng.uniform(8.0, 30.0)


PAINTERS = {1: paint_pits, 2: paint_crazing, 3: paint_scratches, 4: paint_patch}
