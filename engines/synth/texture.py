"""The bare strip: grain, faint rolling-direction streaks, illumination and soft bands.

Generating 400k random numbers per frame would blow the 5 ms budget, so the fine grain lives in
a bank twice the frame size, drawn once from the seed; each frame takes a slice at a random
offset (and random flips). Everything that varies slowly is built on a coarse grid and
upscaled with one cv2.resize.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]

_ROW_STEP = 8  # rows of the full frame per row of the coarse illumination grid


def blur(array: Float32Array, sigma_x: float, sigma_y: float = 0.0) -> Float32Array:
    """Gaussian blur of a float32 image (cv2.GaussianBlur with its result typed)."""
    return np.asarray(cv2.GaussianBlur(array, (0, 0), sigma_x, sigmaY=sigma_y), np.float32)


def resize(
    array: Float32Array, size: tuple[int, int], interpolation: int = cv2.INTER_LINEAR
) -> Float32Array:
    """cv2.resize of a float32 image to `size` = (width, height), its result typed."""
    return np.asarray(cv2.resize(array, size, interpolation=interpolation), np.float32)


@dataclass(frozen=True)
class TextureParams:
    """Background knobs (taken from SynthConfig)."""

    height: int
    width: int
    brightness: float
    grain: float
    strip_edge_rate: float


def _grain_bank(rng: np.random.Generator, height: int, width: int) -> Float32Array:
    """Zero-mean grain with unit-ish std: fine speckle plus grain stretched along the roll."""
    fine = rng.standard_normal((height, width), dtype=np.float32)
    fine = blur(fine, 0.55)
    streaky = rng.standard_normal((height, width), dtype=np.float32)
    streaky = blur(streaky, 0.7, 4.0)
    mottle = rng.standard_normal((height, width), dtype=np.float32)
    mottle = blur(mottle, 3.0)
    bank = fine / fine.std() + 0.35 * streaky / streaky.std() + 0.6 * mottle / mottle.std()
    # Isolated bright specks: the real strip has them everywhere and nobody labels them.
    specks = np.zeros((height, width), np.float32)
    count = int(height * width * 2.5e-4)
    xs = rng.integers(0, width, count)
    ys = rng.integers(0, height, count)
    levels = np.where(rng.random(count) < 0.8, rng.uniform(5.0, 14.0, count), -5.0)
    for x, y, level in zip(xs.tolist(), ys.tolist(), levels.tolist(), strict=True):
        corner = (x + int(rng.integers(1, 3)), y + int(rng.integers(1, 4)))
        cv2.rectangle(specks, (x, y), corner, float(level), -1)
    bank += blur(specks, 0.7)
    return np.ascontiguousarray(bank, dtype=np.float32)


class StripTexture:
    """Renders defect-free strip frames; the grain bank is fixed by the seed at construction."""

    def __init__(self, rng: np.random.Generator, params: TextureParams) -> None:
        self.params = params
        self._bank = _grain_bank(rng, 2 * params.height, 2 * params.width)
        self._coarse_rows = params.height // _ROW_STEP + 2
        # Frame row that each coarse row stands for under cv2.resize's pixel-centre mapping.
        scale = params.height / self._coarse_rows
        self._coarse_y = ((np.arange(self._coarse_rows) + 0.5) * scale - 0.5).astype(np.float32)
        self._x = np.arange(params.width, dtype=np.float32)

    def _coarse_field(self, rng: np.random.Generator) -> Float32Array:
        """Illumination across x, diagonal bands and streaks on a coarse grid of rows."""
        p = self.params
        w = p.width
        u = self._x / w  # 0..1 across the strip
        level = p.brightness + rng.normal(0.0, 10.0)
        contrast = rng.uniform(0.5, 1.8)  # some frames are flat, some strongly lit
        illum = np.zeros(w, np.float32)
        for _ in range(3):
            period = rng.uniform(0.4, 2.5)
            illum += rng.normal(0.0, 11.0) * np.cos(2 * np.pi * u / period + rng.uniform(0, 6.3))
        # Lighting falls off towards the frame's sides; the -1/3 keeps the mean level.
        illum -= rng.uniform(0.0, 60.0) * ((2 * u - 1) ** 2 - 1 / 3)
        field = np.broadcast_to(illum, (self._coarse_rows, w)).copy()

        # Soft bright/dark bands, shallow diagonal, as light reflects off a slightly wavy strip.
        ys = self._coarse_y[:, None]
        for _ in range(int(rng.integers(0, 4))):
            slope = rng.uniform(-0.25, 0.25)
            centre = rng.uniform(-0.2, 1.2) * p.height
            sigma = rng.uniform(15.0, 60.0)
            v = ys - slope * (self._x[None, :] - rng.uniform(0, w)) - centre
            field += rng.choice([-1.0, 1.0]) * rng.uniform(8, 28) * np.exp(-0.5 * (v / sigma) ** 2)
        field *= np.float32(contrast)
        field += np.float32(level)

        # Faint streaks along the rolling direction, fading in and out along their length.
        streak = rng.standard_normal(w).astype(np.float32)
        streak = np.convolve(streak, np.array([0.25, 0.5, 0.25], np.float32), mode="same")
        streak *= rng.uniform(1.5, 4.0) * p.grain
        lines = rng.integers(0, w, int(rng.integers(0, 8)))
        streak[lines] += rng.normal(0.0, 12.0, lines.size) * p.grain
        envelope = rng.uniform(0.2, 1.6, (self._coarse_rows, 40)).astype(np.float32)
        envelope = resize(envelope, (w, self._coarse_rows))
        field += streak[None, :] * envelope
        return field

    def render(self, rng: np.random.Generator) -> tuple[Float32Array, npt.NDArray[np.bool_]]:
        """One float32 background frame and the off-strip mask (True where no steel)."""
        p = self.params
        image = resize(self._coarse_field(rng), (p.width, p.height))
        oy = int(rng.integers(0, p.height + 1))
        ox = int(rng.integers(0, p.width + 1))
        grain = self._bank[oy : oy + p.height, ox : ox + p.width]
        if rng.random() < 0.5:
            grain = grain[::-1]
        if rng.random() < 0.5:
            grain = grain[:, ::-1]
        image += grain * np.float32(rng.uniform(7.0, 11.0) * p.grain)
        off_strip = np.zeros((p.height, p.width), np.bool_)
        if rng.random() < p.strip_edge_rate:
            self._strip_edge(rng, image, off_strip)
        return image, off_strip

    def _strip_edge(
        self, rng: np.random.Generator, image: Float32Array, off_strip: npt.NDArray[np.bool_]
    ) -> None:
        """The strip's edge in view: near-black beyond a slightly slanted, wavy edge line."""
        p = self.params
        y = np.arange(p.height, dtype=np.float32)
        edge = rng.uniform(0.03, 0.3) * p.width + rng.uniform(-0.05, 0.05) * y
        edge += rng.uniform(0.0, 3.0) * np.sin(y / rng.uniform(8.0, 30.0) + rng.uniform(0, 6.3))
        if rng.random() < 0.5:
            off_strip[:] = self._x[None, :] < edge[:, None]
        else:
            off_strip[:] = self._x[None, :] > (p.width - edge)[:, None]
        dark = rng.uniform(4.0, 25.0)
        image[off_strip] = dark + 0.15 * (image[off_strip] - p.brightness)
