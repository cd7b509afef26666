"""How a shadow model's defects on one frame compare with the live model's, class by class.

Per class: the pixels each model marks and the pixels both mark, and whether each found the
class at all. Summed over frames (`Tally`), against the live model as the reference: Dice
(pixel overlap), recall (of the live model's pixels, the share the shadow also marks) and
precision (of the shadow's pixels, the share the live model also marks), and per frame
whether both, only the live, or only the shadow model found the class.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from defectd.engines.postprocess import FrameDefects


@dataclass(frozen=True)
class ClassAgreement:
    """One class on one frame."""

    class_id: int  # 1-based
    live_px: int
    shadow_px: int
    both_px: int
    live_found: bool
    shadow_found: bool

    @property
    def disagrees(self) -> bool:
        """One model found the class and the other did not, or their masks overlap by less
        than half (Dice < 0.5)."""
        if self.live_found != self.shadow_found:
            return True
        if not self.live_found:
            return False
        return 2 * self.both_px < 0.5 * (self.live_px + self.shadow_px)


def compare_frame(live: FrameDefects, shadow: FrameDefects) -> tuple[ClassAgreement, ...]:
    """Every class of the model, live against shadow, on one frame."""
    rows = []
    for class_id in range(1, len(live.presence) + 1):
        a, b = live.mask(class_id), shadow.mask(class_id)
        live_px = int(a.sum()) if a is not None else 0
        shadow_px = int(b.sum()) if b is not None else 0
        both = int(np.count_nonzero(a & b)) if a is not None and b is not None else 0
        rows.append(
            ClassAgreement(class_id, live_px, shadow_px, both, a is not None, b is not None)
        )
    return tuple(rows)


@dataclass
class Tally:
    """One class summed over frames."""

    frames: int = 0
    live_px: int = 0
    shadow_px: int = 0
    both_px: int = 0
    found_both: int = 0
    live_only: int = 0
    shadow_only: int = 0

    def add(self, row: ClassAgreement) -> None:
        self.frames += 1
        self.live_px += row.live_px
        self.shadow_px += row.shadow_px
        self.both_px += row.both_px
        if row.live_found and row.shadow_found:
            self.found_both += 1
        elif row.live_found:
            self.live_only += 1
        elif row.shadow_found:
            self.shadow_only += 1

    @property
    def dice(self) -> float | None:
        """Pixel Dice over all frames; None when neither model marked a pixel."""
        total = self.live_px + self.shadow_px
        return 2 * self.both_px / total if total else None

    @property
    def recall(self) -> float | None:
        """Of the live model's pixels, the share the shadow marks too (None: no live pixel)."""
        return self.both_px / self.live_px if self.live_px else None

    @property
    def precision(self) -> float | None:
        """Of the shadow's pixels, the share the live model marks too (None: no shadow pixel)."""
        return self.both_px / self.shadow_px if self.shadow_px else None

    @property
    def frame_agreement(self) -> float | None:
        """Of frames where either model found the class, the share where both did."""
        either = self.found_both + self.live_only + self.shadow_only
        return self.found_both / either if either else None


def tally(rows: Iterable[ClassAgreement]) -> dict[int, Tally]:
    """Per class id, the sums of `rows`."""
    tallies: dict[int, Tally] = {}
    for row in rows:
        tallies.setdefault(row.class_id, Tally()).add(row)
    return dict(sorted(tallies.items()))
