"""Defect classes, in one place: their ids, names and the colour every picture draws them in.

A model's class names come from its model card (what it was trained on); a data set's from its
own description — for the Severstal layout, `SEVERSTAL_NAMES` below (the competition left its
four classes unnamed; these are the names defectd gives them). Colours come from one palette
keyed by class id, so class 3 looks the same in a contact sheet, an overlay and a report.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

BGR = tuple[int, int, int]

# The paper and ink of every report picture (coil maps, confusion matrices, shadow reports),
# so they read as one family.
PAPER: BGR = (255, 255, 255)
INK: BGR = (40, 40, 40)
MUTED: BGR = (110, 110, 110)  # secondary text
WARN: BGR = (20, 60, 190)  # what needs a look: dark red
FRAME: BGR = (150, 150, 150)  # outlines of panels and pictures

# The Severstal layout's classes 1..4.
SEVERSTAL_NAMES: tuple[str, ...] = ("pits", "crazing", "scratches", "patches")

# BGR, far apart in hue and readable on grey steel; classes past the list get hues spread
# evenly around the colour wheel (up to 64 classes, the most a model may have).
_PALETTE: tuple[BGR, ...] = (
    (40, 40, 255),  # red
    (40, 220, 40),  # green
    (255, 160, 0),  # blue
    (255, 40, 255),  # magenta
    (0, 165, 255),  # orange
    (255, 255, 0),  # cyan
    (150, 60, 160),  # purple
    (60, 200, 200),  # olive
)
MAX_CLASSES = 64


@dataclass(frozen=True)
class DefectClass:
    """One class: its id (1-based, as in label files and events), name and colour."""

    id: int
    name: str
    colour: BGR


def class_colour(class_id: int) -> BGR:
    """The colour of class `class_id` (1-based) in every picture defectd draws."""
    if class_id < 1:
        return (255, 255, 255)
    if class_id <= len(_PALETTE):
        return _PALETTE[class_id - 1]
    # Golden-ratio steps around the hue circle keep later classes apart from each other.
    hue = ((class_id - len(_PALETTE)) * 0.618034) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return (round(blue * 255), round(green * 255), round(red * 255))


def defect_classes(names: Sequence[str]) -> tuple[DefectClass, ...]:
    """Classes 1..N for the names of a model card or a data set."""
    return tuple(DefectClass(i + 1, name, class_colour(i + 1)) for i, name in enumerate(names))


def class_name(names: Sequence[str], class_id: int) -> str:
    """The name of `class_id` among `names`, or ``class N`` when there is none."""
    return names[class_id - 1] if 1 <= class_id <= len(names) else f"class {class_id}"


SEVERSTAL_CLASSES: tuple[DefectClass, ...] = defect_classes(SEVERSTAL_NAMES)
