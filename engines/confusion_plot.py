"""A confusion matrix as a picture, drawn with OpenCV alone (engines carry no matplotlib).

Rows are the truth, columns the prediction, index 0 the background (or whatever `zero_label`
names). Each cell is shaded by its share of the truth row — the recall of that truth class
going to that prediction — from white (0 %) to deep blue (100 %), and shows the share with
the count below it. A row with no truth at all is grey and says so. The row totals sit on the
right, a colour bar below. Sized to read at 100 % zoom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.classes import INK, MUTED, PAPER, class_name
from defectd.engines.errors import InvalidInput

BGRImage = npt.NDArray[np.uint8]
BGR = tuple[int, int, int]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_CELL = 92
_MARGIN = 18
_GRID: BGR = (190, 190, 190)
_EMPTY_ROW: BGR = (228, 228, 228)
# White to deep blue (BGR); every step darker and more saturated than the one before.
_LOW = np.array((252, 250, 247), np.float64)
_HIGH = np.array((107, 48, 8), np.float64)


@dataclass(frozen=True)
class ConfusionPicture:
    """The drawn picture and where its grid lies, so callers (and tests) can find a cell."""

    image: BGRImage
    origin: tuple[int, int]
    cell: int
    size: int

    def cell_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the cell for truth `row`, prediction `col`."""
        if not (0 <= row < self.size and 0 <= col < self.size):
            raise IndexError(f"cell ({row}, {col}) is outside the {self.size}×{self.size} grid")
        x, y = self.origin
        return x + col * self.cell, y + row * self.cell, self.cell, self.cell


def share_colour(share: float) -> BGR:
    """The fill of a cell holding `share` (0..1) of its truth row."""
    # A gamma under 1 lifts small shares off white, so a 3 % leak is still visible.
    weight = float(np.clip(share, 0.0, 1.0)) ** 0.6
    b, g, r = (_LOW + (_HIGH - _LOW) * weight).round().astype(int)
    return int(b), int(g), int(r)


def _ascii(text: str) -> str:
    # Hershey fonts draw ASCII only; anything else would come out as '?' glyph soup.
    return text.encode("ascii", "replace").decode("ascii")


def _text_size(text: str, scale: float, thickness: int = 1) -> tuple[int, int]:
    (width, height), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    return int(width), int(height)


def _put(
    image: BGRImage,
    text: str,
    centre: tuple[int, int],
    scale: float,
    colour: BGR,
    thickness: int = 1,
    align: str = "centre",
) -> None:
    width, height = _text_size(text, scale, thickness)
    x = centre[0] - width // 2 if align == "centre" else centre[0] - width
    cv2.putText(
        image, text, (x, centre[1] + height // 2), _FONT, scale, colour, thickness, cv2.LINE_AA
    )


def _vertical(text: str, scale: float, colour: BGR, thickness: int = 1) -> BGRImage:
    """`text` on paper, turned to read bottom to top."""
    width, height = _text_size(text, scale, thickness)
    strip = np.full((height + 10, width + 6, 3), PAPER, np.uint8)
    cv2.putText(strip, text, (3, height + 4), _FONT, scale, colour, thickness, cv2.LINE_AA)
    return np.asarray(cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE), np.uint8)


def _paste(canvas: BGRImage, part: BGRImage, x: int, y: int) -> None:
    canvas[y : y + part.shape[0], x : x + part.shape[1]] = part


def _count(value: int) -> str:
    """Counts that fit a cell: exact below 100,000, then k / M / G with three digits."""
    if value < 100_000:
        return f"{value:,}"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return str(value)  # not reached


def _share(share: float) -> str:
    if share == 0.0:
        return "0"
    if share == 1.0:
        return "100%"
    if share < 0.001:
        return "<0.1%"
    return f"{share * 100:.1f}%"


def _check_matrix(matrix: npt.ArrayLike) -> npt.NDArray[np.int64]:
    array = np.asarray(matrix)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] < 1:
        raise InvalidInput(f"a confusion matrix must be square N×N, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) or (array < 0).any():
        raise InvalidInput("a confusion matrix holds counts: non-negative integers")
    return array.astype(np.int64)


def draw_confusion(
    matrix: npt.ArrayLike,
    names: Sequence[str],
    title: str,
    zero_label: str = "background",
) -> ConfusionPicture:
    """Draw an N×N confusion matrix (rows truth, columns prediction, index 0 `zero_label`);
    `names` name the classes 1..N-1 (``class N`` where there is none)."""
    counts = _check_matrix(matrix)
    size = counts.shape[0]
    labels = [_ascii(f"{i} {zero_label if i == 0 else class_name(names, i)}") for i in range(size)]
    totals = counts.sum(axis=1)

    label_scale, axis_scale = 0.5, 0.6
    label_width = max(_text_size(text, label_scale)[0] for text in labels)
    # Column labels lie flat when they fit a cell, else they stand up.
    flat = label_width <= _CELL - 8
    columns_height = 22 if flat else label_width + 14
    axis_band = 26
    title_band = 40
    rows_width = label_width + 12
    totals_width = max(_text_size("truth total", 0.45)[0], 64) + 16
    grid = size * _CELL
    bar_band = 64

    left = _MARGIN + axis_band + rows_width
    top = _MARGIN + title_band + axis_band + columns_height
    width = left + grid + totals_width + _MARGIN
    bar_width = max(grid, 180)
    subtitle = "cell: share of its truth row (recall), count below"
    width = max(
        width,
        left + bar_width + 24 + _MARGIN,  # room for the "100%" tick under the bar's end
        _MARGIN * 2 + _text_size(_ascii(title), 0.65, 2)[0],
        _MARGIN * 2 + _text_size(subtitle, 0.45)[0],
    )
    height = top + grid + bar_band + _MARGIN
    canvas = np.full((height, width, 3), PAPER, np.uint8)

    cv2.putText(canvas, _ascii(title), (_MARGIN, _MARGIN + 20), _FONT, 0.65, INK, 2, cv2.LINE_AA)
    cv2.putText(canvas, subtitle, (_MARGIN, _MARGIN + 38), _FONT, 0.45, MUTED, 1, cv2.LINE_AA)
    _put(canvas, "prediction", (left + grid // 2, _MARGIN + title_band + 12), axis_scale, INK, 2)
    truth = _vertical("truth", axis_scale, INK, 2)
    _paste(canvas, truth, _MARGIN, top + grid // 2 - truth.shape[0] // 2)

    for i, text in enumerate(labels):
        middle = left + i * _CELL + _CELL // 2
        if flat:
            _put(canvas, text, (middle, top - 12), label_scale, INK)
        else:
            part = _vertical(text, label_scale, INK)
            _paste(canvas, part, middle - part.shape[1] // 2, top - 6 - part.shape[0])
        _put(canvas, text, (left - 8, top + i * _CELL + _CELL // 2), label_scale, INK, 1, "right")
    _put(canvas, "truth total", (left + grid + totals_width // 2, top - 12), 0.45, MUTED)

    for row in range(size):
        y = top + row * _CELL
        total = int(totals[row])
        for col in range(size):
            x = left + col * _CELL
            value = int(counts[row, col])
            share = value / total if total else 0.0
            fill = share_colour(share) if total else _EMPTY_ROW
            cv2.rectangle(canvas, (x, y), (x + _CELL - 1, y + _CELL - 1), fill, -1)
            # Light text on dark cells, dark text on light ones.
            ink: BGR = (255, 255, 255) if sum(fill) < 3 * 150 else INK
            if value == 0:
                ink = MUTED  # quiet zeros let the real confusions stand out
            centre_x = x + _CELL // 2
            main = _share(share) if total else "no truth"
            _put(canvas, main, (centre_x, y + _CELL // 2 - 9), 0.6 if total else 0.45, ink, 2)
            _put(canvas, _count(value), (centre_x, y + _CELL // 2 + 16), 0.45, ink)
        _put(canvas, _count(total), (left + grid + totals_width // 2, y + _CELL // 2), 0.5, INK)
    for k in range(size + 1):
        cv2.line(canvas, (left, top + k * _CELL), (left + grid, top + k * _CELL), _GRID, 1)
        cv2.line(canvas, (left + k * _CELL, top), (left + k * _CELL, top + grid), _GRID, 1)

    # Colour bar under the grid: 0 % .. 100 % of a truth row.
    bar_top = top + grid + 16
    ramp = np.array([share_colour(i / (bar_width - 1)) for i in range(bar_width)], np.uint8)
    canvas[bar_top : bar_top + 12, left : left + bar_width] = ramp[None, :, :]
    cv2.rectangle(canvas, (left, bar_top), (left + bar_width - 1, bar_top + 11), _GRID, 1)
    for share, text in ((0.0, "0%"), (0.5, "50%"), (1.0, "100%")):
        _put(canvas, text, (left + round(share * (bar_width - 1)), bar_top + 26), 0.42, MUTED)
    return ConfusionPicture(canvas, (left, top), _CELL, size)


def write_confusion_png(
    matrix: npt.ArrayLike,
    names: Sequence[str],
    path: Path,
    title: str,
    zero_label: str = "background",
) -> ConfusionPicture:
    """Draw the confusion matrix (see `draw_confusion`) and write it as a PNG at `path`."""
    if path.suffix.lower() != ".png":
        raise InvalidInput(f"{path}: the confusion picture is a PNG; give a .png name")
    picture = draw_confusion(matrix, names, title, zero_label)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture.image):
        raise OSError(f"could not write {path}")
    return picture
