"""The real labelled sets beside the checkout (../shared or $DEFECTD_SHARED), when present.

Only counts are checked: the folders are read, never copied into the repository.
"""

from __future__ import annotations

import pytest

from defectd.engines.datasets import check, detect_format, open_dataset
from tests.engines.datasets.helpers import shared


@pytest.mark.slow
def test_neu_seg() -> None:
    root = shared("neu-seg", "masks")
    assert detect_format(root) == "image-mask-folders"
    report = check(open_dataset(root))
    assert report.ok, report.problems[:5]
    assert report.images == 3630 and report.sizes == {(200, 200): 3630}
    assert [c.id for c in report.classes] == [1, 2, 3]
    assert all(c.images > 1000 for c in report.classes)  # every class is well represented
    assert report.defect_free == 0
    # The exact duplicates its SOURCES.md names (a fourth pair there is not pixel-identical
    # in this copy); they must end up on one side of a split.
    assert report.duplicate_groups == [
        ("001281.jpg", "001285.jpg"),
        ("002151.jpg", "002155.jpg"),
        ("003021.jpg", "003025.jpg"),
    ]
    groups = report.split_groups()
    assert groups["001285.jpg"] == groups["001281.jpg"] == "001281.jpg"


def test_magnetic_tile() -> None:
    root = shared("magnetic-tile", "MT_Free")
    dataset = open_dataset(root)
    assert dataset.format == "class-folders"
    assert dataset.spec.names == ("blowhole", "break", "crack", "fray", "uneven")
    assert dataset.spec.no_defect_folders == ("MT_Free",)
    report = check(dataset)
    assert report.ok, report.problems[:5]
    assert report.images == 670
    assert [c.images for c in report.classes] == [57, 42, 28, 16, 49]
    # MT_Free's 476 images, and two MT_Uneven images whose masks are empty (noted)
    assert report.defect_free == 478 and len(report.notices) == 2
    assert len(report.sizes) > 100  # sizes vary image to image


def test_severstal_real() -> None:
    root = shared("severstal-real", "train.csv")
    report = check(open_dataset(root))
    assert report.ok and report.format == "severstal"
    assert report.images == 20 and report.defect_free == 0
    assert [c.images for c in report.classes] == [2, 1, 12, 9]
