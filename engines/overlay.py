"""Defect overlays: the frame with defects filled and outlined by class colour, and a legend.

What an engineer wants to see when asking "what did the model find on this sheet?".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.classes import class_colour, class_name
from defectd.engines.errors import InvalidInput
from defectd.engines.postprocess import FrameDefects

BGRImage = npt.NDArray[np.uint8]
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT = (235, 235, 235)
_BAND = 24


def _band(width: int, height: int = _BAND) -> BGRImage:
    return np.full((height, width, 3), 24, np.uint8)


def overlay(image: npt.NDArray[np.uint8], defects: FrameDefects, alpha: float = 0.35) -> BGRImage:
    """The grey frame in BGR, each kept class mask filled (alpha) and outlined in its colour,
    each component tagged with its class number."""
    frame = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    filled = frame.copy()
    for class_id, plane in defects.planes.items():
        filled[plane > 0] = class_colour(class_id)
    out: BGRImage = np.asarray(cv2.addWeighted(filled, alpha, frame, 1.0 - alpha, 0.0), np.uint8)
    for class_id, plane in defects.planes.items():
        contours, _ = cv2.findContours(plane, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, class_colour(class_id), 2, cv2.LINE_AA)
    for component in defects.components:
        x, y, _, _ = component.bbox
        where, text = (x + 2, max(y + 14, 14)), str(component.class_id)
        # A dark halo under the coloured number keeps it readable on any steel.
        for colour, thickness in (((0, 0, 0), 3), (class_colour(component.class_id), 1)):
            cv2.putText(out, text, where, _FONT, 0.5, colour, thickness, cv2.LINE_AA)
    return out


def legend(defects: FrameDefects, width: int, names: Sequence[str] = ()) -> BGRImage:
    """One line per class: colour, name (from `names`, the model card's), kept area, largest
    component, peak and presence."""
    rows = []
    for index in range(len(defects.presence)):
        class_id = index + 1
        found = [c for c in defects.components if c.class_id == class_id]
        band = _band(width, 20)
        cv2.rectangle(band, (8, 4), (22, 16), class_colour(class_id), -1 if found else 1)
        name = class_name(names, class_id)
        if found:
            text = (
                f"class {class_id} ({name}): {sum(c.area for c in found):,} px in "
                f"{len(found)} region(s), peak p {max(c.score for c in found):.2f}, "
                f"presence {defects.presence[index]:.2f}"
            )
        else:
            text = f"class {class_id} ({name}): none (presence {defects.presence[index]:.2f})"
        cv2.putText(band, text, (30, 15), _FONT, 0.45, _TEXT, 1, cv2.LINE_AA)
        rows.append(band)
    return np.vstack(rows)


def inspection_panel(
    image: npt.NDArray[np.uint8], defects: FrameDefects, title: str, names: Sequence[str] = ()
) -> BGRImage:
    """Title band, overlay, legend: one frame's full picture; `names` are the card's classes."""
    width = image.shape[1]
    head = _band(width)
    verdict = ", ".join(f"class {c}" for c in defects.classes) or "no defects"
    cv2.putText(head, f"{title}   —   {verdict}", (8, 17), _FONT, 0.5, _TEXT, 1, cv2.LINE_AA)
    return np.vstack((head, overlay(image, defects), legend(defects, width, names)))


def write_panels(panels: Sequence[BGRImage], path: Path) -> None:
    """Stack panels (with a gap) into one PNG/JPEG; OSError if it cannot be written."""
    if not panels:
        raise InvalidInput("no panels to write")
    width = max(p.shape[1] for p in panels)
    gap = np.full((8, width, 3), 64, np.uint8)
    parts: list[BGRImage] = []
    for panel in panels:
        if panel.shape[1] < width:
            pad = np.full((panel.shape[0], width - panel.shape[1], 3), 24, np.uint8)
            panel = np.hstack((panel, pad))
        parts += [panel, gap]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.vstack(parts[:-1])):
        raise OSError(f"could not write {path} (use a .png or .jpg name)")
