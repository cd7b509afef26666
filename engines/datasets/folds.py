"""K-fold cross-validation folders of a small Severstal-layout set (a few real frames).

`write_folds(root, folds, seed, out)` deals the frames of `root` into `folds` parts, spreading
each class combination over the parts (a round robin over a seeded shuffle, rarest
combinations first), and writes for every fold ``OUT/fold-K/train`` (the other parts) and
``OUT/fold-K/test`` (this part) as Severstal-layout folders: a ``train.csv`` with the rows of
their frames and ``train_images/`` of symbolic links to the original files (nothing copied:
the data may be read-only and must stay where it is). A model trained on ``fold-K/train``
and scored on ``fold-K/test`` never scores a frame it trained on; the K scores together cover
every frame once.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defectd.engines.errors import InvalidInput, InvalidSetting
from defectd.engines.labels import LabelTable, write_labels
from defectd.engines.severstal import SeverstalDataset

FOLDS_FILE = "folds.json"


@dataclass(frozen=True)
class Fold:
    """One fold: its number (1-based) and the frames it trains on and is scored on."""

    number: int
    train: tuple[str, ...]
    test: tuple[str, ...]


def deal(classes_by_image: dict[str, tuple[int, ...]], folds: int, seed: int) -> list[list[str]]:
    """The image ids dealt into `folds` parts, each class combination spread evenly."""
    if folds < 2:
        raise InvalidSetting(f"--folds must be at least 2, got {folds}")
    if folds > len(classes_by_image):
        raise InvalidSetting(
            f"--folds {folds} is more than the {len(classes_by_image)} images: every fold "
            "needs a frame to score"
        )
    groups: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for image_id, classes in sorted(classes_by_image.items()):
        groups[tuple(sorted(classes))].append(image_id)
    rng = np.random.default_rng(seed)
    parts: list[list[str]] = [[] for _ in range(folds)]
    turn = 0
    for combination in sorted(groups, key=lambda c: (len(groups[c]), c)):
        members = groups[combination]
        for index in rng.permutation(len(members)):
            parts[turn % folds].append(members[int(index)])
            turn += 1
    return [sorted(part) for part in parts]


def _link_folder(dataset: SeverstalDataset, ids: list[str], out: Path) -> None:
    images = out / "train_images"
    images.mkdir(parents=True)
    table = LabelTable(num_classes=dataset.num_classes)
    for image_id in ids:
        os.symlink((dataset.images_dir / image_id).resolve(), images / image_id)
        for class_id in dataset.classes(image_id):
            table.set(image_id, class_id, dataset.labels.rle(image_id, class_id))
    write_labels(out / "train.csv", table, layout="new", image_ids=ids)


def write_folds(root: Path | str, folds: int, seed: int, out: Path | str) -> list[Fold]:
    """Write the cross-validation folders of `root` under `out` (see the module docstring);
    `out` must not exist yet. Also writes OUT/folds.json listing every fold's frames."""
    dataset = SeverstalDataset(root)
    out = Path(out)
    if out.exists():
        raise InvalidInput(f"{out} already exists; choose a new folder for the folds")
    if not dataset.image_ids:
        raise InvalidInput(f"{root}: no images to deal into folds")
    parts = deal({i: dataset.classes(i) for i in dataset.image_ids}, folds, seed)
    result = []
    for number, test in enumerate(parts, start=1):
        train = sorted(i for part in parts if part is not test for i in part)
        _link_folder(dataset, train, out / f"fold-{number}" / "train")
        _link_folder(dataset, test, out / f"fold-{number}" / "test")
        result.append(Fold(number, tuple(train), tuple(test)))
    listing = {
        "source": str(root),
        "seed": seed,
        "folds": [{"fold": f.number, "train": f.train, "test": f.test} for f in result],
    }
    (out / FOLDS_FILE).write_text(json.dumps(listing, indent=1), encoding="utf-8")
    return result


def read_folds(out: Path | str) -> list[Fold]:
    """The folds `write_folds` wrote under `out` (from OUT/folds.json)."""
    path = Path(out) / FOLDS_FILE
    if not path.is_file():
        raise InvalidInput(
            f"{path} does not exist; make the folds with `defectd dataset folds DIR --out {out}`"
        )
    try:
        listing = json.loads(path.read_text(encoding="utf-8"))
        folds = [
            Fold(int(f["fold"]), tuple(map(str, f["train"])), tuple(map(str, f["test"])))
            for f in listing["folds"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path}: not a folds listing ({exc})") from None
    if len(folds) < 2:
        raise InvalidInput(f"{path}: lists {len(folds)} fold(s); cross-validation needs two")
    return folds
