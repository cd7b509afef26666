"""Training augmentations on numpy frames: crops, flips, brightness/contrast, defect blackout.

They work on a grey H×W uint8 image and its C×H×W uint8 masks together, so labels always move
with pixels. Pure numpy/OpenCV: a data-loader worker never needs a GPU for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.errors import InvalidSetting
from defectd.engines.masks import present_classes

Image = npt.NDArray[np.uint8]
Masks = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation knobs; `crop` is (height, width) or None for full frames."""

    crop: tuple[int, int] | None = (256, 512)
    hflip: float = 0.5
    vflip: float = 0.5
    brightness: float = 0.15  # ± share of the grey range added
    contrast: float = 0.15  # ± relative contrast change
    blackout: float = 0.1  # probability of erasing one defect class from a frame
    defect_crop: float = 0.5  # probability that a crop is placed over a defect pixel

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip", "blackout", "defect_crop"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidSetting(f"AugmentConfig.{name} is a probability, got {value}")
        for name in ("brightness", "contrast"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InvalidSetting(f"AugmentConfig.{name} must be in [0, 1), got {value}")
        if self.crop is not None and min(self.crop) < 1:
            raise InvalidSetting(
                f"AugmentConfig.crop must be positive (height, width), got {self.crop}"
            )


def random_crop(
    image: Image,
    masks: Masks,
    size: tuple[int, int],
    rng: np.random.Generator,
    around: tuple[int, int] | None = None,
) -> tuple[Image, Masks]:
    """A crop of `size` = (height, width) at a uniform random position.

    With `around` = (row, col) the position is uniform among the crops containing that pixel.
    """
    height, width = image.shape
    crop_h, crop_w = size
    if crop_h > height or crop_w > width:
        raise InvalidSetting(f"crop {crop_h}x{crop_w} is larger than the frame {height}x{width}")
    top_range, left_range = (0, height - crop_h), (0, width - crop_w)
    if around is not None:
        row, col = around
        top_range = (max(0, row - crop_h + 1), min(row, height - crop_h))
        left_range = (max(0, col - crop_w + 1), min(col, width - crop_w))
    top = int(rng.integers(top_range[0], top_range[1] + 1))
    left = int(rng.integers(left_range[0], left_range[1] + 1))
    window = (slice(top, top + crop_h), slice(left, left + crop_w))
    return image[window], masks[(slice(None), *window)]


def brightness_contrast(
    image: Image, rng: np.random.Generator, brightness: float, contrast: float
) -> Image:
    """Scale contrast about the frame mean and shift brightness, saturating to 0..255."""
    gain = 1.0 + rng.uniform(-contrast, contrast)
    shift = 255.0 * rng.uniform(-brightness, brightness)
    mean = float(image.mean())
    out = (image.astype(np.float32) - mean) * gain + mean + shift
    result: Image = np.clip(out, 0, 255).astype(np.uint8)
    return result


def defect_blackout(
    image: Image, masks: Masks, class_index: int, rng: np.random.Generator
) -> tuple[Image, Masks]:
    """Erase class `class_index` (0-based): paint plausible bare strip over it, clear its mask.

    The fill is the local background plus grain of the frame's own strength, so no flat patch
    gives away where a defect was.
    """
    region = masks[class_index] > 0
    if not region.any():
        return image, masks
    background = (masks.max(axis=0) == 0).astype(np.float32)
    pixels = image.astype(np.float32)
    if not background.any():
        return image, masks  # nothing to borrow bare strip from
    # Normalised convolution: blur over background pixels only, so the defect does not bleed
    # in. Wide defects are filled from coarser scales where the fine one has no support.
    local = np.full(image.shape, float(pixels[background > 0].mean()), np.float32)
    unfilled = np.ones(image.shape, bool)
    for sigma in (8.0, 32.0, 128.0):
        weight = cv2.GaussianBlur(background, (0, 0), sigma)
        support = unfilled & (weight > 0.05)
        blurred = cv2.GaussianBlur(pixels * background, (0, 0), sigma)
        local[support] = blurred[support] / weight[support]
        unfilled &= ~support
    fine = cv2.GaussianBlur(pixels, (0, 0), 8.0)
    grain = float((pixels - fine)[background > 0].std())
    fill = local + rng.normal(0.0, grain, size=image.shape).astype(np.float32)
    out = image.copy()
    out[region] = np.clip(fill[region], 0, 255).astype(np.uint8)
    cleared = masks.copy()
    cleared[class_index] = 0
    return out, cleared


def flips_and_tone(
    image: Image, masks: Masks, config: AugmentConfig, rng: np.random.Generator
) -> tuple[Image, Masks]:
    """The last steps of every training view: flips, then brightness/contrast."""
    if rng.random() < config.hflip:
        image, masks = image[:, ::-1], masks[:, :, ::-1]
    if rng.random() < config.vflip:
        image, masks = image[::-1], masks[:, ::-1]
    if config.brightness or config.contrast:
        image = brightness_contrast(image, rng, config.brightness, config.contrast)
    return np.ascontiguousarray(image), np.ascontiguousarray(masks)


def augment(
    image: Image, masks: Masks, config: AugmentConfig, rng: np.random.Generator
) -> tuple[Image, Masks]:
    """One training view of a frame: blackout, crop, flips, brightness/contrast."""
    present = present_classes(masks)
    if present and rng.random() < config.blackout:
        image, masks = defect_blackout(image, masks, int(rng.choice(present)) - 1, rng)
    if config.crop is not None:
        around = None
        present = present_classes(masks)
        if present and rng.random() < config.defect_crop:
            # Small rare defects would sit outside most uniform crops: aim at one.
            rows, cols = np.nonzero(masks[int(rng.choice(present)) - 1])
            pick = int(rng.integers(0, rows.size))
            around = (int(rows[pick]), int(cols[pick]))
        image, masks = random_crop(image, masks, config.crop, rng, around)
    return flips_and_tone(image, masks, config, rng)


class WorkerRandom:
    """A numpy generator per data-loader worker: seeded from torch's per-worker seed (which
    follows the run's seed), made anew when that seed changes (a new worker or epoch)."""

    def __init__(self) -> None:
        self._rng: np.random.Generator | None = None
        self._seed: int | None = None

    def generator(self) -> np.random.Generator:
        import torch

        seed = torch.initial_seed()
        if self._rng is None or self._seed != seed:
            self._rng, self._seed = np.random.default_rng(seed), seed
        return self._rng
