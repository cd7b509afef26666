"""`SyntheticLine`: labelled Severstal-like frames, random access by (seed, index).

Per frame: a strip background, a class set drawn from the real train set's combination
frequencies, a label area per class drawn from the real area quantiles, components outlined
and painted where they touch no other label, then harmless marks away from every label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.errors import InvalidSetting
from defectd.engines.masks import present_classes
from defectd.engines.synth.defects import PAINTERS, outline
from defectd.engines.synth.marks import FOOTPRINT_LEVEL, MARK_PAINTERS
from defectd.engines.synth.stats import (
    COMPONENT_SHAPES,
    NUM_CLASSES,
    REFERENCE_SHAPE,
    class_set_probabilities,
    sample_component_count,
    sample_label_area,
    split_area,
)
from defectd.engines.synth.texture import StripTexture, TextureParams

UInt8Array = npt.NDArray[np.uint8]

_BANK_STREAM = 0x5EED  # seeds the texture bank; frames use 3-word seeds, so never collide
_GAP = 4  # px kept between labels of different components
_GAP_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _GAP + 1, 2 * _GAP + 1))
_ATTEMPTS = 8


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the synthetic line; the defaults imitate the Severstal train set."""

    height: int = 256
    width: int = 1600
    defect_free_share: float | None = None  # None: the real 47%; 1.0: no defects at all
    mark_rate: float = 0.6  # mean harmless marks per frame (Poisson)
    strip_edge_rate: float = 0.05  # share of frames with the strip edge and dark beyond it
    brightness: float = 120.0  # mean grey level of bare strip
    grain: float = 1.0  # contrast of grain and streaks, 1 = like the real frames
    max_label_fraction: float = 0.45  # cap on one class's label area, share of the frame
    class_share: tuple[int, float] | None = None  # (c, s): frames with class c make share s

    def __post_init__(self) -> None:
        if self.height < 64 or self.width < 64:
            raise InvalidSetting(
                f"SynthConfig frame {self.height}×{self.width} is too small: use at least 64×64"
            )
        if self.defect_free_share is not None and not 0.0 <= self.defect_free_share <= 1.0:
            raise InvalidSetting(
                f"SynthConfig.defect_free_share={self.defect_free_share}: use a share in "
                "[0, 1], or None for the real 47%"
            )
        checks = (
            ("mark_rate", self.mark_rate, 0.0, 20.0),
            ("strip_edge_rate", self.strip_edge_rate, 0.0, 1.0),
            ("brightness", self.brightness, 40.0, 200.0),
            ("grain", self.grain, 0.0, 4.0),
            ("max_label_fraction", self.max_label_fraction, 0.01, 0.9),
        )
        for name, value, low, high in checks:
            if not low <= value <= high:
                raise InvalidSetting(f"SynthConfig.{name}={value}: use a value in [{low}, {high}]")


@dataclass(frozen=True)
class SynthFrame:
    """One generated frame with its labels (and, for false-alarm checks, its marks)."""

    index: int
    image_id: str  # 9 hex chars + ".jpg", unique per (seed, index)
    image: UInt8Array  # (H, W) grey
    masks: UInt8Array  # (4, H, W) 0/1, class c in masks[c - 1], no pixel in two classes
    marks: UInt8Array  # (H, W) 0/1 where harmless marks were painted; never labelled

    @property
    def classes(self) -> tuple[int, ...]:
        """1-based ids of the classes with at least one labelled pixel."""
        return present_classes(self.masks)


def image_id(seed: int, index: int) -> str:
    """Kaggle-like file name for frame `index` of `seed`: 9 hex chars + ".jpg".

    A 4-round Feistel permutation of the 36-bit index keyed by the seed, so ids look random
    yet never repeat within one seed.
    """
    if not 0 <= index < 1 << 36:
        raise ValueError(f"frame index {index} is out of range: use 0 <= index < 2**36")
    left, right = index >> 18, index & 0x3FFFF
    for round_ in range(4):
        digest = hashlib.blake2b(f"{seed}:{round_}:{right}".encode(), digest_size=4).digest()
        left, right = right, left ^ (int.from_bytes(digest, "big") & 0x3FFFF)
    return f"{(left << 18) | right:09x}.jpg"


class SyntheticLine:
    """An endless, deterministic synthetic steel line: `frame(i)` depends on (seed, i) only."""

    def __init__(self, seed: int, config: SynthConfig = SynthConfig()) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise InvalidSetting(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = seed
        self.config = config
        self._texture = StripTexture(
            np.random.default_rng([seed, _BANK_STREAM]),
            TextureParams(
                config.height, config.width, config.brightness, config.grain, config.strip_edge_rate
            ),
        )
        self._class_sets, self._class_p = class_set_probabilities(
            config.defect_free_share, config.class_share
        )
        self._area_scale = config.height * config.width / (REFERENCE_SHAPE[0] * REFERENCE_SHAPE[1])
        self._area_cap = config.max_label_fraction * config.height * config.width

    def frames(self, count: int, start: int = 0) -> Iterator[SynthFrame]:
        """Frames start, start + 1, ..., start + count - 1."""
        for index in range(start, start + count):
            yield self.frame(index)

    def frame(self, index: int) -> SynthFrame:
        """Frame `index`: identical bytes for the same (seed, index, config), in any order."""
        name = image_id(self.seed, index)
        bg_rng, defect_rng, mark_rng = (
            np.random.default_rng([self.seed, index, stream]) for stream in range(3)
        )
        image, off_strip = self._texture.render(bg_rng)
        masks = np.zeros((NUM_CLASSES, *image.shape), np.uint8)
        occupied = off_strip.view(np.uint8).copy()  # labels grown by _GAP, plus no-steel area
        classes = self._class_sets[int(defect_rng.choice(len(self._class_sets), p=self._class_p))]
        targets = {
            c: min(sample_label_area(defect_rng, c, self._area_scale), self._area_cap)
            for c in classes
        }
        for c in sorted(classes, key=lambda c: -targets[c]):  # largest first: easiest to fit
            self._place_class(defect_rng, c, targets[c], image, masks[c - 1], occupied)
        marks = self._place_marks(mark_rng, image, occupied)
        np.clip(image, 0.0, 255.0, out=image)
        return SynthFrame(index, name, image.astype(np.uint8), masks, marks)

    def _place_class(
        self,
        rng: np.random.Generator,
        class_id: int,
        area: float,
        image: npt.NDArray[np.float32],
        mask: UInt8Array,
        occupied: UInt8Array,
    ) -> None:
        min_area = COMPONENT_SHAPES[class_id].min_area * self._area_scale
        count = sample_component_count(rng, class_id, area / self._area_scale)
        placed = 0
        for part in split_area(rng, area, count, int(min_area)):
            placed += self._place_component(rng, class_id, part, image, mask, occupied)
        # A class that was drawn must appear, or the class frequencies drift: shrink and retry.
        shrink = 0.5
        while not placed and area * shrink >= min_area:
            placed += self._place_component(rng, class_id, area * shrink, image, mask, occupied)
            shrink *= 0.5

    def _place_component(
        self,
        rng: np.random.Generator,
        class_id: int,
        area: float,
        image: npt.NDArray[np.float32],
        mask: UInt8Array,
        occupied: UInt8Array,
    ) -> bool:
        height, width = mask.shape
        flush = rng.random() < COMPONENT_SHAPES[class_id].edge_share
        shape = outline(rng, class_id, area, height, flush)
        poly = shape.polygon
        span_x, span_y = poly.max(axis=0)
        for _ in range(_ATTEMPTS):
            x0 = rng.uniform(0.0, max(width - 1 - span_x, 0.0))
            if shape.anchor == 0:
                y0 = rng.uniform(0.0, max(height - 1 - span_y, 0.0))
            elif shape.is_band:
                y0 = 0.0 if shape.anchor < 0 else height - 1 - span_y
            else:  # hang a blob over the edge, cut flat like real labels at the frame edge
                over = rng.uniform(0.05, 0.3) * span_y
                y0 = -over if shape.anchor < 0 else height - 1 - span_y + over
            in_frame = poly + np.array((x0, y0))
            found = _rasterize(in_frame, height, width)
            if found is None:
                continue
            label, (top, left) = found
            got = int(np.count_nonzero(label))
            if abs(got - area) > 0.05 * area:
                # Pixel edges (small labels) or a blob hanging over the frame edge put the
                # area off target: rescale once (bands in width only, to keep their ends).
                centre = in_frame.mean(axis=0)
                factor = area / max(got, 1)
                scale = (factor, 1.0) if shape.is_band else (np.sqrt(factor),) * 2
                found = _rasterize(centre + (in_frame - centre) * scale, height, width)
                if found is None:
                    continue
                label, (top, left) = found
            rows = slice(top, top + label.shape[0])
            cols = slice(left, left + label.shape[1])
            if np.any(occupied[rows, cols] & label):
                continue
            PAINTERS[class_id](rng, image[rows, cols], label)
            mask[rows, cols] |= label
            _grow_into(occupied, label, top, left)
            return True
        return False

    def _place_marks(
        self, rng: np.random.Generator, image: npt.NDArray[np.float32], occupied: UInt8Array
    ) -> UInt8Array:
        marks = np.zeros(occupied.shape, np.uint8)
        height, width = occupied.shape
        names = list(MARK_PAINTERS)
        for _ in range(int(rng.poisson(self.config.mark_rate))):
            delta = MARK_PAINTERS[names[int(rng.integers(len(names)))]](rng)
            delta = delta[:height, :width]
            footprint = (np.abs(delta) > FOOTPRINT_LEVEL).view(np.uint8)
            h, w = delta.shape
            for _ in range(4):
                y0, x0 = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
                rows, cols = slice(y0, y0 + h), slice(x0, x0 + w)
                if not np.any(occupied[rows, cols] & footprint):
                    image[rows, cols] += delta
                    marks[rows, cols] |= footprint
                    break
        return marks


def _rasterize(
    poly: npt.NDArray[np.float64], height: int, width: int
) -> tuple[UInt8Array, tuple[int, int]] | None:
    """Fill a frame-coordinate polygon, clipped to the frame: (ROI label, (top, left))."""
    top, left = max(int(poly[:, 1].min()), 0), max(int(poly[:, 0].min()), 0)
    bottom = min(int(np.ceil(poly[:, 1].max())) + 1, height)
    right = min(int(np.ceil(poly[:, 0].max())) + 1, width)
    if bottom <= top or right <= left:
        return None
    label = np.zeros((bottom - top, right - left), np.uint8)
    points = np.round((poly - (left, top)) * 4).astype(np.int32)  # 2 fractional bits
    cv2.fillPoly(label, [points], 1, cv2.LINE_8, 2)
    return (label, (top, left)) if label.any() else None


def _grow_into(occupied: UInt8Array, label: UInt8Array, top: int, left: int) -> None:
    """Mark `label` plus a _GAP-px ring as taken, so later labels keep their distance."""
    height, width = occupied.shape
    t, lft = max(top - _GAP, 0), max(left - _GAP, 0)
    b = min(top + label.shape[0] + _GAP, height)
    r = min(left + label.shape[1] + _GAP, width)
    padded = np.zeros((b - t, r - lft), np.uint8)
    padded[top - t : top - t + label.shape[0], left - lft : left - lft + label.shape[1]] = label
    occupied[t:b, lft:r] |= np.asarray(cv2.dilate(padded, _GAP_KERNEL), np.uint8)
