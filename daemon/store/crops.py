"""`CropStore`: JPEG crops of defects on disk, beside the database, bounded in bytes; and
`crop_box`, the frame region a crop is cut from.

A crop lives at ``<directory>/<YYYY-MM-DD>/<coil>/<defect id>-<hash>.jpg`` (capture date in
UTC; names made safe for any file system, the hash keeping two ids that clean to the same
name apart). The path relative to the directory is what `StripDefect.crop` holds. Files are
written whole (a temporary name, then a rename), so a crash never leaves half a JPEG.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from defectd.engines.errors import InvalidInput, InvalidSetting

log = logging.getLogger(__name__)

JPEG_QUALITY = 90
SUFFIX = ".jpg"
NO_COIL = "no-coil"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_CHARS = 80  # of the cleaned id; the hash follows


def safe_name(text: str, limit: int = _NAME_CHARS) -> str:
    """`text` as a file name part: letters, digits, ``.``, ``_``, ``-`` only, no leading
    dot, at most `limit` characters; '_' when nothing is left."""
    cleaned = _UNSAFE.sub("_", text).lstrip(".")[:limit]
    return cleaned or "_"


def crop_file_name(defect_id: str) -> str:
    """The file name of a defect's crop: the cleaned id and a hash of the exact id."""
    digest = hashlib.sha1(defect_id.encode(), usedforsecurity=False).hexdigest()[:10]
    return f"{safe_name(defect_id)}-{digest}{SUFFIX}"


def crop_box(
    bbox: tuple[int, int, int, int], frame_shape: tuple[int, ...], margin_px: int
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end exclusive, of `bbox` (x, y, width, height in frame pixels)
    grown by `margin_px` on every side and clipped to a frame of `frame_shape` (height,
    width, …). ValueError when the box lies outside the frame."""
    if margin_px < 0:
        raise ValueError(f"margin_px must be ≥ 0, got {margin_px}")
    if len(frame_shape) < 2:
        raise ValueError(f"frame_shape must be (height, width, …), got {frame_shape}")
    height, width = int(frame_shape[0]), int(frame_shape[1])
    x, y, w, h = (int(v) for v in bbox)
    if w < 1 or h < 1:
        raise ValueError(f"bbox {bbox} is empty (width and height must be ≥ 1)")
    x0, y0 = max(0, x - margin_px), max(0, y - margin_px)
    x1, y1 = min(width, x + w + margin_px), min(height, y + h + margin_px)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"bbox {bbox} lies outside the {width}×{height} frame")
    return x0, y0, x1, y1


class CropStore:
    """Crops under `directory` (created when missing), at most `max_bytes` once
    `enforce_limit()` ran. `now_ns` dates crops saved without a capture time."""

    def __init__(
        self,
        directory: Path | str,
        max_bytes: int,
        *,
        quality: int = JPEG_QUALITY,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_bytes < 1:
            raise InvalidSetting(f"crop store max_bytes must be ≥ 1, got {max_bytes}")
        if not 1 <= quality <= 100:
            raise InvalidSetting(f"JPEG quality must be in 1…100, got {quality}")
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._quality = quality
        self._now_ns = now_ns

    @property
    def directory(self) -> Path:
        """The folder the crops and their relative paths live in."""
        return self._dir

    def path(self, relative: str) -> Path:
        """The file of a relative crop path; ValueError when it points outside the store."""
        path = (self._dir / relative).resolve()
        if not path.is_relative_to(self._dir.resolve()):
            raise ValueError(f"crop path {relative!r} is outside {self._dir}")
        return path

    def save(
        self,
        defect_id: str,
        image: np.ndarray,
        *,
        coil_id: str | None = None,
        capture_ns: int | None = None,
    ) -> str:
        """Write `image` (uint8, height × width, grey) as the crop of `defect_id`; the path
        relative to the directory (for `StripDefect.crop`). Saving again replaces it."""
        if image.dtype != np.uint8 or image.ndim != 2 or image.size == 0:
            raise InvalidInput(
                f"a crop must be a non-empty uint8 height × width grey image, got "
                f"{image.dtype} of shape {image.shape}"
            )
        ok, encoded = cv2.imencode(SUFFIX, image, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:
            raise InvalidInput(f"OpenCV could not encode the crop of {defect_id} as JPEG")
        ns = self._now_ns() if capture_ns is None else capture_ns
        day = datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d")
        coil = NO_COIL if coil_id is None else safe_name(coil_id)
        relative = f"{day}/{coil}/{crop_file_name(defect_id)}"
        target = self._dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        partial.write_bytes(encoded.tobytes())
        os.replace(partial, target)
        return relative

    def remove(self, paths: Iterable[str]) -> int:
        """Delete the crops at these relative paths (missing ones are skipped), and folders
        left empty; how many files were deleted."""
        removed = 0
        for relative in paths:
            try:
                path = self.path(relative)
            except ValueError as error:  # not a path this store wrote
                log.error("crop store %s: not removing %s", self._dir, error)
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed += 1
            self._prune(path.parent)
        return removed

    def total_bytes(self) -> int:
        """Bytes of all crops."""
        return sum(size for _, _, size in self._files())

    def enforce_limit(self) -> int:
        """Delete the oldest crops (by modification time) until the rest fit in `max_bytes`;
        how many were deleted."""
        files = sorted(self._files())
        total = sum(size for _, _, size in files)
        removed = 0
        for _, path, size in files:
            if total <= self._max_bytes:
                break
            total -= size
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # removed meanwhile (retention)
            removed += 1
            self._prune(path.parent)
        if removed:
            log.info(
                "crop store %s: %d oldest crops deleted to stay under %d bytes",
                self._dir,
                removed,
                self._max_bytes,
            )
        return removed

    def _files(self) -> list[tuple[int, Path, int]]:
        """(mtime ns, path, bytes) of every crop."""
        found = []
        for path in self._dir.rglob(f"*{SUFFIX}"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found.append((stat.st_mtime_ns, path, stat.st_size))
        return found

    def _prune(self, folder: Path) -> None:
        """Remove `folder` and its parents up to the store's directory while empty."""
        root = self._dir.resolve()
        folder = folder.resolve()
        while folder != root and folder.is_relative_to(root):
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): stop here
                return
            folder = folder.parent
