"""Contact sheet: frames stacked with their labels outlined, for a person to judge the line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.classes import SEVERSTAL_CLASSES, class_colour
from defectd.engines.errors import InvalidSetting
from defectd.engines.synth.line import SynthFrame
from defectd.engines.synth.stats import NUM_CLASSES

MARK_COLOUR = (0, 220, 255)  # yellow: painted, never labelled

_CAPTION = 22  # px of caption band above each frame
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _legend(width: int, show_marks: bool) -> npt.NDArray[np.uint8]:
    band = np.full((_CAPTION + 6, width, 3), 32, np.uint8)
    x = 8
    entries = [(c.colour, f"class {c.id} ({c.name})") for c in SEVERSTAL_CLASSES]
    if show_marks:
        entries.append((MARK_COLOUR, "harmless mark (not labelled)"))
    for colour, text in entries:
        cv2.rectangle(band, (x, 8), (x + 14, 22), colour, -1)
        cv2.putText(band, text, (x + 20, 21), _FONT, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
        x += 30 + cv2.getTextSize(text, _FONT, 0.45, 1)[0][0]
    return band


def _panel(frame: SynthFrame, scale: float, show_marks: bool) -> npt.NDArray[np.uint8]:
    h, w = frame.image.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    grey = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
    panel = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    layers = [(frame.masks[c], class_colour(c + 1)) for c in range(NUM_CLASSES)]
    if show_marks:
        layers.append((frame.marks, MARK_COLOUR))
    for mask, colour in layers:
        if not mask.any():
            continue
        small = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(panel, contours, -1, colour, 1, cv2.LINE_AA)
    caption = np.full((_CAPTION, size[0], 3), 16, np.uint8)
    classes = ", ".join(map(str, frame.classes)) or "none (defect-free)"
    text = f"#{frame.index}  {frame.image_id}  classes: {classes}"
    cv2.putText(caption, text, (6, 16), _FONT, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
    return np.vstack((caption, panel))


def write_contact_sheet(
    path: Path,
    frames: Sequence[SynthFrame],
    scale: float = 0.5,
    show_marks: bool = True,
) -> None:
    """Write a PNG of `frames` stacked top to bottom at `scale`, labels outlined per class.

    Each frame gets a caption (index, image id, classes); a legend at the top names the class
    colours. With `show_marks`, harmless marks are outlined too, so one can check that they
    carry no label.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InvalidSetting(f"contact sheet {path} must be a .png file: change its extension")
    if not frames:
        raise InvalidSetting("no frames to show: pass at least one frame")
    if not 0.05 <= scale <= 2.0:
        raise InvalidSetting(f"scale {scale} is out of range: use 0.05 to 2")
    panels = [_panel(f, scale, show_marks) for f in frames]
    width = max(p.shape[1] for p in panels)
    panels = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0))) for p in panels]
    sheet = np.vstack([_legend(width, show_marks), *panels])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f"OpenCV could not write {path}")
