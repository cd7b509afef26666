"""The picture of `defectd shadow report`: per class grouped bars of Dice, recall and
precision against the live model on a 0..1 scale with the agreement threshold marked, and a
montage of the worst disagreements' pictures with a caption each. Drawn with OpenCV alone,
1280 px wide, to read at 100 % zoom. The numbers come from `report.summarise`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from defectd.daemon.shadow.compare import Tally
from defectd.daemon.shadow.report import (
    DICE_AGREES,
    MONTAGE_PICTURES,
    OVERLAP,
    Disagreement,
    ShadowSummary,
    compared,
    problems,
    value_text,
)
from defectd.engines.classes import FRAME, INK, MUTED, PAPER, WARN, class_colour

BGRImage = npt.NDArray[np.uint8]
BGR = tuple[int, int, int]

PICTURE_WIDTH = 1280
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MARGIN = 20
_LABEL_RIGHT = 250  # the class labels end here
_METRIC_RIGHT = 330  # the metric names end here, right-aligned
_BARS = (340, 840)  # x of 0 and of 1 on the scale
_STATUS_LEFT = 910  # the verdict column
_BAR_HEIGHT = 14
_BAR_GAP = 3
_GROUP_PAD = 16  # px above and below a class's bars
_CELL_GAP = 16  # between montage pictures
_CELL_MAX_HEIGHT = 330  # a montage picture is scaled down to at most this
_CAPTION = 42  # px under a montage picture: two lines
_WARNING_ROW = 24  # px for the title's warning line

_GOOD: BGR = (40, 130, 40)
_GRID: BGR = (215, 215, 215)
_STRIPE: BGR = (246, 246, 246)
# One colour per metric, apart from the class palette's pure hues.
METRICS: tuple[tuple[str, str, BGR], ...] = (  # key and name; what it says; colour
    ("dice", "Dice: pixel overlap, 2 x both / (live + shadow)", (140, 70, 30)),
    ("recall", "recall: of the live pixels, marked by the shadow", (160, 150, 40)),
    ("precision", "precision: of the shadow pixels, marked by the live model", (60, 140, 230)),
)


def report_picture(summary: ShadowSummary, store_dir: Path) -> BGRImage:
    """The summary as one BGR uint8 picture (module docstring); the disagreements' pictures
    are read from `store_dir` (a missing one shows as a grey box that says so)."""
    parts = [_titles(summary), _chart(summary), _montage(summary, store_dir)]
    canvas = np.vstack([*parts, np.full((_MARGIN, PICTURE_WIDTH, 3), PAPER, np.uint8)])
    return np.asarray(canvas, np.uint8)


def _titles(summary: ShadowSummary) -> BGRImage:
    warning = _WARNING_ROW if summary.mixed_models else 0
    band = _paper(118 + warning)
    ids = [str(run.run_id) for run in summary.runs]
    runs = f"run {ids[0]}" if len(ids) == 1 else f"runs {', '.join(ids) or '-'}"
    title = _ascii(f"Shadow {runs}: live {summary.live_model}  vs  shadow {summary.shadow_model}")
    scale = 0.75
    while scale > 0.45 and _text_size(title, scale, 2)[0] > PICTURE_WIDTH - 2 * _MARGIN:
        scale -= 0.05
    title = _fitted(title, scale, PICTURE_WIDTH - 2 * _MARGIN, thickness=2)
    cv2.putText(band, title, (_MARGIN, 42), _FONT, scale, INK, 2, cv2.LINE_AA)
    subtitle = _fitted(
        f"Line {summary.line}, {summary.share} of frames: {summary.frames} frames compared, "
        f"{summary.disagreements} disagreements ({summary.with_pictures} with a picture). "
        f"Against the live model; dashed: the {DICE_AGREES:.2f} agreement threshold.",
        0.5,
        PICTURE_WIDTH - 2 * _MARGIN,
    )
    cv2.putText(band, subtitle, (_MARGIN, 70), _FONT, 0.5, MUTED, 1, cv2.LINE_AA)
    if warning:
        text = "These runs compare different models: report on one with --run ID."
        cv2.putText(band, text, (_MARGIN, 70 + warning), _FONT, 0.5, WARN, 1, cv2.LINE_AA)
    x, y = _MARGIN, 88 + warning
    for _, label, colour in METRICS:
        cv2.rectangle(band, (x, y), (x + 22, y + _BAR_HEIGHT), colour, -1)
        cv2.putText(band, label, (x + 30, y + 12), _FONT, 0.5, INK, 1, cv2.LINE_AA)
        x += 30 + _text_size(label, 0.5)[0] + 28
    return band


def bar_x(value: float) -> int:
    """The x in the picture where a bar of `value` (0..1) ends."""
    return round(_BARS[0] + min(1.0, max(0.0, value)) * (_BARS[1] - _BARS[0]))


def _chart(summary: ShadowSummary) -> BGRImage:
    group = len(METRICS) * _BAR_HEIGHT + (len(METRICS) - 1) * _BAR_GAP + 2 * _GROUP_PAD
    classes = list(summary.tallies.items())
    top = 8
    height = top + max(1, len(classes)) * group + 46
    band = _paper(height)
    for index in range(len(classes)):
        if index % 2 == 0:
            y0 = top + index * group
            cv2.rectangle(
                band, (_MARGIN, y0), (PICTURE_WIDTH - _MARGIN, y0 + group - 1), _STRIPE, -1
            )
    bottom = top + max(1, len(classes)) * group
    for tick in range(11):
        x = bar_x(tick / 10)
        cv2.line(band, (x, top), (x, bottom), _GRID, 1)
    _dashed(band, bar_x(DICE_AGREES), top, bottom, WARN)
    for index, (class_id, tally) in enumerate(classes):
        _class_group(band, summary, class_id, tally, top + index * group)
    if not classes:
        text = "no classes recorded"
        cv2.putText(band, text, (_BARS[0], top + group // 2), _FONT, 0.55, MUTED, 1, cv2.LINE_AA)
    cv2.line(band, (_BARS[0], bottom), (_BARS[1], bottom), INK, 1)
    cv2.line(band, (_BARS[0], top), (_BARS[0], bottom), INK, 1)
    for tick in range(0, 11, 2):
        x, text = bar_x(tick / 10), f"{tick / 10:.1f}"
        cv2.line(band, (x, bottom), (x, bottom + 6), INK, 1)
        width, text_height = _text_size(text, 0.45)
        cv2.putText(
            band,
            text,
            (x - width // 2, bottom + 12 + text_height),
            _FONT,
            0.45,
            INK,
            1,
            cv2.LINE_AA,
        )
    mark = f"{DICE_AGREES:.2f}"
    width, text_height = _text_size(mark, 0.45)
    cv2.putText(
        band,
        mark,
        (bar_x(DICE_AGREES) - width // 2, bottom + 12 + text_height),
        _FONT,
        0.45,
        WARN,
        1,
        cv2.LINE_AA,
    )
    caption = "0 = no overlap, 1 = the same pixels"
    cv2.putText(
        band,
        caption,
        (_BARS[1] + 24, bottom + 12 + text_height),
        _FONT,
        0.45,
        MUTED,
        1,
        cv2.LINE_AA,
    )
    return band


def _class_group(
    band: BGRImage, summary: ShadowSummary, class_id: int, tally: Tally, y0: int
) -> None:
    """One class's label, bars and verdict, in the band from `y0` down."""
    bars_top = y0 + _GROUP_PAD
    middle = bars_top + (len(METRICS) * (_BAR_HEIGHT + _BAR_GAP) - _BAR_GAP) // 2
    colour = class_colour(class_id)
    label = _ascii(f"{class_id} {summary.name(class_id)}")
    scale = 0.6
    while scale > 0.4 and _text_size(label, scale)[0] > _LABEL_RIGHT - _MARGIN - 34:
        scale -= 0.05
    label = _fitted(label, scale, _LABEL_RIGHT - _MARGIN - 34)
    cv2.circle(band, (_MARGIN + 14, middle), 8, colour, -1, cv2.LINE_AA)
    cv2.circle(band, (_MARGIN + 14, middle), 8, _darker(colour), 1, cv2.LINE_AA)
    cv2.putText(band, label, (_MARGIN + 30, middle + 7), _FONT, scale, INK, 1, cv2.LINE_AA)
    values = {"dice": tally.dice, "recall": tally.recall, "precision": tally.precision}
    for index, (key, legend, metric_colour) in enumerate(METRICS):
        y = bars_top + index * (_BAR_HEIGHT + _BAR_GAP)
        short = legend.split(":")[0]
        width = _text_size(short, 0.42)[0]
        baseline = y + _BAR_HEIGHT - 3
        cv2.putText(
            band, short, (_METRIC_RIGHT - width, baseline), _FONT, 0.42, MUTED, 1, cv2.LINE_AA
        )
        value = values[key]
        if value is None:
            text, x_text, ink = "-  (no pixels)", _BARS[0] + 6, MUTED
        else:
            if bar_x(value) > _BARS[0]:  # 0: no bar, only its value
                corner, opposite = (_BARS[0] + 1, y), (bar_x(value), y + _BAR_HEIGHT - 1)
                cv2.rectangle(band, corner, opposite, metric_colour, -1)
            text, x_text, ink = f"{value:.2f}", bar_x(value) + 6, INK
        cv2.putText(band, text, (x_text, y + _BAR_HEIGHT - 2), _FONT, 0.45, ink, 1, cv2.LINE_AA)
    _status(band, tally, bars_top)


def _status(band: BGRImage, tally: Tally, top: int) -> None:
    """The verdict column of one class: agrees / disagrees and why, the frame counts."""
    reasons = problems(tally)
    if not compared(tally):
        headline, ink = "not compared: neither model found it", MUTED
    elif reasons:
        headline, ink = "DISAGREES: " + ", ".join(r.split(" < ")[0] for r in reasons), WARN
    else:
        headline, ink = "agrees", _GOOD
    cv2.putText(
        band, headline, (_STATUS_LEFT, top + 12), _FONT, 0.5, ink, 1 + (ink == WARN), cv2.LINE_AA
    )
    either = tally.found_both + tally.live_only + tally.shadow_only
    if either:
        lines = [
            f"frames: both {tally.found_both}, live only {tally.live_only}, "
            f"shadow only {tally.shadow_only}",
            f"found on {either} of {tally.frames} frames; "
            f"frame agreement {value_text(tally.frame_agreement)}",
        ]
    else:
        lines = [f"on none of {tally.frames} frames"]
    for index, text in enumerate(lines):
        cv2.putText(
            band, text, (_STATUS_LEFT, top + 32 + 17 * index), _FONT, 0.45, MUTED, 1, cv2.LINE_AA
        )


@dataclass(frozen=True)
class MontageCell:
    """One picture of the montage."""

    picture: str
    camera: str
    seq: int
    run_id: int
    rows: tuple[Disagreement, ...]  # the disagreements on this picture, worst first


def montage_cells(
    worst: Iterable[Disagreement], count: int = MONTAGE_PICTURES
) -> list[MontageCell]:
    """Up to `count` distinct pictures of `worst` (worst first), each with every disagreement
    of `worst` it shows. Each class's worst picture comes first, so one class that disagrees
    on many frames does not hide the others; the rest fill up in order."""
    ordered = list(worst)
    by_picture: dict[str, list[Disagreement]] = {}
    for d in ordered:
        by_picture.setdefault(d.picture, []).append(d)
    chosen: list[str] = []
    classes: set[int] = set()
    for d in ordered:  # each class's worst picture
        if d.class_id not in classes and d.picture not in chosen and len(chosen) < count:
            chosen.append(d.picture)
        classes.add(d.class_id)
    for d in ordered:  # then the worst of the rest
        if d.picture not in chosen and len(chosen) < count:
            chosen.append(d.picture)
    rank = {picture: index for index, picture in enumerate(by_picture)}
    cells = []
    for picture in sorted(chosen, key=rank.__getitem__):
        rows = by_picture[picture]
        cells.append(MontageCell(picture, rows[0].camera, rows[0].seq, rows[0].run_id, tuple(rows)))
    return cells


def _montage(summary: ShadowSummary, store_dir: Path) -> BGRImage:
    cells = montage_cells(summary.worst)
    head = _paper(56)
    cv2.line(head, (_MARGIN, 12), (PICTURE_WIDTH - _MARGIN, 12), _GRID, 1)
    if cells:
        title = (
            f"Worst disagreements ({len(cells)} of {summary.with_pictures}, each class's worst "
            "among them): the live mask outlined green above, the shadow's magenta below"
        )
    else:
        title = "No disagreement pictures: the models agreed, or none were saved (shadow.max_saved)"
    cv2.putText(head, _ascii(title), (_MARGIN, 42), _FONT, 0.6, INK, 1, cv2.LINE_AA)
    if not cells:
        return head
    columns = min(3, len(cells))
    cell_width = (PICTURE_WIDTH - 2 * _MARGIN - 2 * _CELL_GAP) // 3
    rows = [cells[i : i + columns] for i in range(0, len(cells), columns)]
    bands = [head]
    for row in rows:
        pictures = [_fit(_read(store_dir, cell.picture), cell_width) for cell in row]
        tallest = max(p.shape[0] for p in pictures)
        band = _paper(tallest + _CAPTION + _CELL_GAP)
        for index, (cell, picture) in enumerate(zip(row, pictures, strict=True)):
            x0 = _MARGIN + index * (cell_width + _CELL_GAP)
            height, width = picture.shape[:2]
            band[:height, x0 : x0 + width] = picture
            cv2.rectangle(band, (x0 - 1, 0), (x0 + width, height), FRAME, 1)
            _caption(band, cell, x0, height + 18, cell_width)
        bands.append(band)
    return np.vstack(bands)


def _caption(band: BGRImage, cell: MontageCell, x: int, baseline: int, width: int) -> None:
    first = _fitted(f"{cell.camera}  seq {cell.seq}  (run {cell.run_id})", 0.5, width)
    cv2.putText(band, first, (x, baseline), _FONT, 0.5, INK, 1, cv2.LINE_AA)
    second = _fitted("; ".join(d.describe() for d in cell.rows), 0.45, width)
    ink = WARN if cell.rows[0].outcome != OVERLAP else MUTED
    cv2.putText(band, second, (x, baseline + 19), _FONT, 0.45, ink, 1, cv2.LINE_AA)


def _read(store_dir: Path, picture: str) -> BGRImage:
    """A stored picture, or a grey box saying why there is none."""
    path = (store_dir / picture).resolve()
    image = None
    if path.is_relative_to(store_dir.resolve()):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is not None:
        return np.asarray(image, np.uint8)
    box = np.full((120, 360, 3), 200, np.uint8)
    cv2.putText(box, "picture missing:", (10, 50), _FONT, 0.5, INK, 1, cv2.LINE_AA)
    cv2.putText(box, _fitted(picture, 0.45, 340), (10, 76), _FONT, 0.45, INK, 1, cv2.LINE_AA)
    return box


def _fit(image: BGRImage, width: int) -> BGRImage:
    """`image` scaled to `width`, or smaller to stay within _CELL_MAX_HEIGHT; enlarged with
    nearest neighbours so the 1 px outlines stay sharp."""
    height = image.shape[0] * width / image.shape[1]
    scale = (
        width / image.shape[1] if height <= _CELL_MAX_HEIGHT else _CELL_MAX_HEIGHT / image.shape[0]
    )
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    return np.asarray(cv2.resize(image, size, interpolation=interpolation), np.uint8)


# -- small helpers --------------------------------------------------------------------------


def _paper(height: int) -> BGRImage:
    return np.full((height, PICTURE_WIDTH, 3), PAPER, np.uint8)


def _dashed(band: BGRImage, x: int, y0: int, y1: int, colour: BGR) -> None:
    for y in range(y0, y1, 8):
        cv2.line(band, (x, y), (x, min(y + 4, y1)), colour, 1)


def _text_size(text: str, scale: float, thickness: int = 1) -> tuple[int, int]:
    (width, height), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    return int(width), int(height)


def _fitted(text: str, scale: float, width: int, thickness: int = 1) -> str:
    """`text` in ASCII, cut with "..." to fit `width` px."""
    text = _ascii(text)
    if _text_size(text, scale, thickness)[0] <= width:
        return text
    while text and _text_size(text + "...", scale, thickness)[0] > width:
        text = text[:-1]
    return text + "..."


def _darker(colour: BGR) -> BGR:
    b, g, r = colour
    return int(b * 0.55), int(g * 0.55), int(r * 0.55)


def _ascii(text: str) -> str:
    # Hershey fonts draw ASCII only.
    return text.encode("ascii", "replace").decode("ascii")
