"""Where the simulator's frames come from: the synthetic line or a folder of images.

A `FrameSource` gives `Picture`s, frame k of the run by `picture(k)`, deterministically, so a
run is reproducible. `SynthSource` renders `SyntheticLine` frames (with their masks as truth);
`FolderSource` cycles a folder's images (with truth when it is a Severstal-layout folder:
``train.csv`` beside ``train_images/``); `PooledSource` prepares a few frames once and cycles
them, so sending costs no rendering. `open_source` picks one from a `SimulatorConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from defectd.daemon.clients.simulator.config import SYNTH, SimulatorConfig
from defectd.daemon.clients.simulator.long_scratches import SCRATCH_CLASS, LongScratches
from defectd.daemon.protocol import ENCODINGS
from defectd.engines.errors import InvalidInput, InvalidSetting
from defectd.engines.labels import LabelTable, read_labels
from defectd.engines.rle import encode as rle_encode
from defectd.engines.severstal import list_images
from defectd.engines.synth import SynthConfig, SyntheticLine
from defectd.engines.synth.stats import NUM_CLASSES

_FILE_ENCODINGS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}

UInt8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Picture:
    """One frame ready to send: the payload (never written to after it is made: sends are
    zero-copy) with its header fields, and the truth when the source knows it."""

    payload: UInt8Array | bytes
    encoding: str
    width: int
    height: int
    truth: tuple[str, ...] | None  # Kaggle RLE per class, class 1 first; "" = clean
    name: str  # synthetic image id or file name, for logs


class FrameSource(Protocol):
    """Where frames come from; `picture(k)` is frame k of the run, deterministic."""

    @property
    def has_truth(self) -> bool: ...

    def picture(self, index: int, with_truth: bool) -> Picture: ...

    def describe(self) -> str: ...


def encode_image(image: UInt8Array, encoding: str, jpeg_quality: int = 95) -> UInt8Array:
    """A grey (H×W) or BGR (H×W×3) uint8 image as a payload in `encoding`."""
    if encoding in ("mono8", "bgr8"):
        want = 3 if encoding == "bgr8" else 1
        have = 1 if image.ndim == 2 else image.shape[2]
        if have != want:
            code = cv2.COLOR_GRAY2BGR if want == 3 else cv2.COLOR_BGR2GRAY
            image = np.asarray(cv2.cvtColor(image, code), np.uint8)
        return np.ascontiguousarray(image)
    if encoding not in ("jpeg", "png"):
        raise InvalidSetting(f"encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if encoding == "jpeg" else []
    ok, data = cv2.imencode(".jpg" if encoding == "jpeg" else ".png", image, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {encoding}")
    return np.ascontiguousarray(data.reshape(-1), np.uint8)


class SynthSource:
    """Frames of `SyntheticLine(seed)`, with their masks as truth."""

    has_truth = True

    def __init__(
        self,
        seed: int,
        encoding: str = "mono8",
        jpeg_quality: int = 95,
        shape: tuple[int, int] = (256, 1600),
        cameras: int = 1,
        long_scratches: float = 0.0,
    ) -> None:
        self.line = SyntheticLine(seed, SynthConfig(height=shape[0], width=shape[1]))
        self.encoding = encoding
        self.jpeg_quality = jpeg_quality
        self.cameras = cameras  # frame k of the run is frame k // cameras of camera k % cameras
        self.long = LongScratches(seed, long_scratches, shape) if long_scratches else None

    def picture(self, index: int, with_truth: bool) -> Picture:
        frame = self.line.frame(index)
        image, masks = frame.image, frame.masks
        if self.long is not None:
            image, scratch = self.long.paint(image, index % self.cameras, index // self.cameras)
            if scratch.any():
                masks = masks.copy()
                masks[SCRATCH_CLASS - 1] |= scratch
        payload = encode_image(image, self.encoding, self.jpeg_quality)
        truth = tuple(rle_encode(mask) for mask in masks) if with_truth else None
        height, width = image.shape
        return Picture(payload, self.encoding, width, height, truth, frame.image_id)

    def describe(self) -> str:
        config = self.line.config
        return f"synthetic line seed {self.line.seed}, {config.width}×{config.height}"


class FolderSource:
    """Image files (jpg, jpeg, png) of a folder, in name order, cycled.

    A Severstal-layout folder (``train.csv`` and ``train_images/``) gives truth from its
    labels. With `encoding` None or the file's own format the payload is the file's bytes,
    as read; any other encoding decodes the file and encodes it again.
    """

    def __init__(self, folder: Path, encoding: str | None = None, jpeg_quality: int = 95) -> None:
        folder = Path(folder)
        labels_path, images = folder / "train.csv", folder / "train_images"
        self.labels: LabelTable | None = None
        if labels_path.is_file() and images.is_dir():
            self.labels = read_labels(labels_path, num_classes=NUM_CLASSES)
            folder = images
        self.folder = folder
        self.files = list_images(folder)
        if not self.files:
            raise FileNotFoundError(f"{folder} holds no .jpg, .jpeg or .png images to send")
        self.encoding = encoding
        self.jpeg_quality = jpeg_quality
        self._sizes: dict[str, tuple[int, int]] = {}  # file → (width, height), read once

    @property
    def has_truth(self) -> bool:
        return self.labels is not None

    def picture(self, index: int, with_truth: bool) -> Picture:
        name = self.files[index % len(self.files)]
        path = self.folder / name
        data = path.read_bytes()
        native = _FILE_ENCODINGS[path.suffix.lower()]
        encoding = self.encoding or native
        truth = None
        if with_truth and self.labels is not None:
            truth = tuple(self.labels.rle(name, c) for c in range(1, NUM_CLASSES + 1))
        if encoding == native:
            size = self._sizes.get(name)
            if size is None:
                height, width = self._decode(path, data, cv2.IMREAD_GRAYSCALE).shape[:2]
                size = self._sizes[name] = (width, height)
            return Picture(data, encoding, *size, truth, name)
        flags = cv2.IMREAD_COLOR if encoding == "bgr8" else cv2.IMREAD_GRAYSCALE
        image = self._decode(path, data, flags)
        payload = encode_image(image, encoding, self.jpeg_quality)
        return Picture(payload, encoding, image.shape[1], image.shape[0], truth, name)

    def describe(self) -> str:
        labelled = ", with labels" if self.labels is not None else ""
        return f"{len(self.files)} images in {self.folder}{labelled}"

    @staticmethod
    def _decode(path: Path, data: bytes, flags: int) -> UInt8Array:
        # IGNORE_ORIENTATION: the daemon ignores EXIF rotation too.
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            raise InvalidInput(f"{path}: cannot be read as an image")
        return np.asarray(image, np.uint8)


class PooledSource:
    """`source` limited to `size` distinct frames, each prepared once: frame k is picture
    k mod size. Sending then costs no rendering or encoding (memory: size × payload)."""

    def __init__(self, source: FrameSource, size: int) -> None:
        self.source = source
        self.size = size
        self._cache: dict[int, Picture] = {}

    @property
    def has_truth(self) -> bool:
        return self.source.has_truth

    def picture(self, index: int, with_truth: bool) -> Picture:
        key = index % self.size
        cached = self._cache.get(key)
        if cached is None or (with_truth and cached.truth is None):
            cached = self._cache[key] = self.source.picture(key, with_truth)
        return cached

    def describe(self) -> str:
        return f"{self.source.describe()}, pool of {self.size} frames"


def open_source(config: SimulatorConfig) -> FrameSource:
    """The `FrameSource` that `config.source` names."""
    source: FrameSource
    if config.source == SYNTH:
        source = SynthSource(
            config.seed,
            config.encoding or "mono8",
            config.jpeg_quality,
            (config.height, config.width),
            cameras=len(config.cameras),
            long_scratches=config.long_scratches,
        )
    else:
        folder = Path(config.source)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"source {config.source!r} is neither 'synth' nor a folder of images"
            )
        source = FolderSource(folder, config.encoding, config.jpeg_quality)
    return PooledSource(source, config.pool) if config.pool else source
