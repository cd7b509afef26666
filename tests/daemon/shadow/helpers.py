"""Tiny real shadow runs: hand-drawn masks on 8×8 frames, compared and stored as the daemon does.

Four frames (camera ``top-0``, seq 10..13) of a four-class model, live against shadow:

- class 1 pits: a 3×3 block on every frame; the shadow's is the same but on seq 12, where it
  sits two columns right (3 of 9 pixels shared): live 36 px, shadow 36, both 30.
- class 2 scratches: a 2×4 block on every frame; the shadow finds it on seq 10 only: live 32
  px, shadow 8, both 8; both found it on 1 frame, the live model alone on 3.
- class 3 inclusions: the shadow alone marks a 2×2 block on seq 13.
- class 4 patches: neither model finds it.

`scale` blows every mask and frame up by a factor (pixel counts × scale²; every ratio the same)
for pictures a person can see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from defectd.daemon.shadow.compare import compare_frame
from defectd.daemon.shadow.store import ShadowStore
from defectd.engines.postprocess import FrameDefects

CLASSES = ("pits", "scratches", "inclusions", "patches")
SIZE = 8
SEQS = (10, 11, 12, 13)
Box = tuple[int, int, int, int]  # row, column, height, width


def box(row: int, column: int, height: int, width: int, scale: int = 1) -> npt.NDArray[np.uint8]:
    """A SIZE×SIZE 0/1 mask (× scale) with one filled block."""
    plane = np.zeros((SIZE, SIZE), np.uint8)
    plane[row : row + height, column : column + width] = 1
    return np.kron(plane, np.ones((scale, scale), np.uint8)) if scale > 1 else plane


def defects(planes: dict[int, Box], scale: int = 1) -> FrameDefects:
    """A frame's kept masks (class id → block); no components (nothing here reads them)."""
    return FrameDefects(
        planes={class_id: box(*b, scale=scale) for class_id, b in planes.items()},
        components=(),
        presence=(0.9,) * len(CLASSES),
        shape=(SIZE * scale, SIZE * scale),
    )


def live_frame(seq: int, scale: int = 1) -> FrameDefects:
    del seq  # the live model sees the same on every frame
    return defects({1: (0, 0, 3, 3), 2: (5, 0, 2, 4)}, scale)


def shadow_frame(seq: int, scale: int = 1) -> FrameDefects:
    planes: dict[int, Box] = {1: (0, 2, 3, 3) if seq == 12 else (0, 0, 3, 3)}
    if seq == 10:
        planes[2] = (5, 0, 2, 4)
    if seq == 13:
        planes[3] = (6, 6, 2, 2)
    return defects(planes, scale)


def grey_frame(scale: int = 1) -> npt.NDArray[np.uint8]:
    """A plain grey frame with a darker mark where the live model's defects are."""
    frame = np.full((SIZE * scale, SIZE * scale), 150, np.uint8)
    frame[box(0, 0, 3, 3, scale) == 1] = 90
    frame[box(5, 0, 2, 4, scale) == 1] = 110
    return frame


def record(
    store: ShadowStore,
    run_id: int,
    camera: str,
    seq: int,
    frame: npt.NDArray[np.uint8],
    live: FrameDefects,
    shadow: FrameDefects,
    max_saved: int = 100,
) -> None:
    """Compare one frame and store it, with a picture when the models disagree."""
    rows = compare_frame(live, shadow)
    differing = tuple(row.class_id for row in rows if row.disagrees)
    picture = None
    if differing:
        picture = store.save_picture(run_id, max_saved, camera, seq, frame, live, shadow, differing)
    store.add(run_id, camera, seq, 1_000 * seq, rows, picture)


def fill(
    directory: Path,
    *,
    shadow_is_live: bool = False,
    scale: int = 1,
    max_saved: int = 100,
    shadow_model: str = "unet-v8",
) -> int:
    """One run of the four frames in a new store at `directory`; its run id."""
    store = ShadowStore(directory)
    try:
        live_model = "unet-v7"
        shadow_name = live_model if shadow_is_live else shadow_model
        run_id = store.begin("line1", live_model, shadow_name, 0.25, CLASSES)
        for seq in SEQS:
            live = live_frame(seq, scale)
            shadow = live if shadow_is_live else shadow_frame(seq, scale)
            record(store, run_id, "top-0", seq, grey_frame(scale), live, shadow, max_saved)
        return run_id
    finally:
        store.close()
