"""`check` reads every file once and reports every problem together, as `file: problem`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from defectd.engines.datasets import check, open_dataset
from tests.engines.datasets.helpers import (
    binary_mask,
    class_folders,
    image_mask_folders,
    label_map,
    noise,
    severstal,
    side_by_side,
    write_image,
    write_mask,
)

NAMES = "classes: [inclusion, patches, scratches]\n"


def folders_with_yaml(root: Path, yaml: str = NAMES) -> Path:
    image_mask_folders(root)
    (root / "dataset.yaml").write_text(yaml)
    return root


def test_a_clean_set_counts_classes_sizes_and_defect_free(tmp_path: Path) -> None:
    report = check(open_dataset(folders_with_yaml(tmp_path)))
    assert report.ok and report.problems == [] and report.notices == []
    assert report.format == "image-mask-folders" and report.images == 3
    assert [(c.id, c.name, c.images) for c in report.classes] == [
        (1, "inclusion", 1),
        (2, "patches", 1),
        (3, "scratches", 1),
    ]
    # each class is a 2×4 band in one 8×12 image of three
    assert report.classes[0].pixels == 8
    assert report.classes[0].pixel_share == pytest.approx(8 / (3 * 96))
    assert report.sizes == {(8, 12): 3} and report.defect_free == 1
    assert report.classes_by_image == {"000001.png": (1,), "000002.png": (2, 3), "000003.png": ()}
    data = report.to_dict()
    assert data["sizes"] == [{"height": 8, "width": 12, "images": 3}]
    assert data["classes"][1] == {
        "id": 2,
        "name": "patches",
        "images": 1,
        "pixels": 8,
        "pixel_share": pytest.approx(8 / 288),
    }


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    root = folders_with_yaml(tmp_path)
    (root / "images" / "000002.png").write_bytes(b"not a png")  # unreadable image
    write_mask(root / "masks" / "000001.png", label_map(9, 12, (1,)))  # wrong size
    write_mask(root / "masks" / "000003.png", label_map(8, 12, (7,)))  # value 7 is no class
    write_image(root / "images" / "000004.png")  # no mask
    write_mask(root / "masks" / "000005.png", label_map(8, 12, (1,)))  # no image
    report = check(open_dataset(root))
    problems = sorted(p.replace(str(root), "ROOT") for p in report.problems)
    assert problems == [
        "ROOT/images/000002.png: cannot be read as an image",
        "ROOT/images/000004.png: no mask: expected ROOT/masks/000004.png "
        "(or set no_defect_rule: missing-mask in dataset.yaml)",
        "ROOT/masks/000001.png: mask is 12×9, its image 000001.png is 12×8",
        "ROOT/masks/000003.png: values 7 (8 px) are not classes "
        "(classes: 1 inclusion, 2 patches, 3 scratches; 0 is background)",
        "ROOT/masks/000005.png: mask without an image (no 000005.* in ROOT/images)",
    ]
    assert not report.ok
    # what could not be read is not counted
    assert report.images == 4 and report.sizes == {(8, 12): 3}
    assert report.classes_by_image == {} and report.defect_free == 0


def test_the_no_defect_rule_lets_images_go_without_masks(tmp_path: Path) -> None:
    root = folders_with_yaml(tmp_path, NAMES + "no_defect_rule: missing-mask\n")
    write_image(root / "images" / "000004.png")
    report = check(open_dataset(root))
    assert report.ok and report.defect_free == 2 and report.classes_by_image["000004.png"] == ()


def test_exact_duplicates_are_a_notice_with_their_groups(tmp_path: Path) -> None:
    root = folders_with_yaml(tmp_path)
    pixels = noise(8, 12, seed=0)
    for name in ("000002.png", "000003.png"):  # both are copies of 000001.png
        cv2.imwrite(str(root / "images" / name), pixels)
    report = check(open_dataset(root))
    assert report.ok
    assert report.duplicate_groups == [("000001.png", "000002.png", "000003.png")]
    assert len(report.notices) == 1
    assert report.notices[0].endswith(
        "000001.png: the same pixels as 000002.png, 000003.png (duplicates: keep them on one "
        "side of a split; their masks differ in 16 px)"
    )
    groups = report.split_groups()
    assert set(groups.values()) == {"000001.png"}


def test_two_images_with_one_stem_cannot_share_a_mask(tmp_path: Path) -> None:
    root = folders_with_yaml(tmp_path)
    write_image(root / "images" / "000001.jpg", seed=9)
    report = check(open_dataset(root))
    assert any("000001.jpg, 000001.png: images with one stem" in p for p in report.problems)
    assert report.images == 2


def test_files_that_are_neither_are_named_in_a_notice(tmp_path: Path) -> None:
    root = folders_with_yaml(tmp_path)
    (root / "images" / "Thumbs.db").write_bytes(b"x")
    (root / "masks" / "README.md").write_text("notes")  # documentation needs no word
    report = check(open_dataset(root))
    assert report.ok
    assert report.notices == [
        f"1 file(s) neither image nor mask were not read: {root}/images/Thumbs.db"
    ]


def test_colour_and_16_bit_masks_are_problems(tmp_path: Path) -> None:
    root = folders_with_yaml(tmp_path)
    colour = np.zeros((8, 12, 3), dtype=np.uint8)
    colour[0, 0] = (0, 0, 255)
    cv2.imwrite(str(root / "masks" / "000001.png"), colour)
    cv2.imwrite(str(root / "masks" / "000002.png"), np.zeros((8, 12), dtype=np.uint16))
    problems = check(open_dataset(root)).problems
    assert any("000001.png: mask is in colour" in p for p in problems)
    assert any("000002.png: mask is uint16 (16-bit)" in p for p in problems)


def test_a_binary_mask_without_values_above_127_is_a_problem(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    write_mask(tmp_path / "a.png", label_map(8, 12, (1,)))  # 0/1: a label map, not binary
    (tmp_path / "dataset.yaml").write_text("mask_kind: binary\nclasses: [defect]\n")
    (problem,) = check(open_dataset(tmp_path)).problems
    assert (
        "a.png: mask values are 0..1, but a binary mask marks its class with values above 127"
        in problem
    )


def test_side_by_side_mask_without_image(tmp_path: Path) -> None:
    root = side_by_side(tmp_path)
    write_mask(root / "lonely.png", label_map(8, 12, (1,)))
    (problem,) = check(open_dataset(root)).problems
    assert problem == f"{root}/lonely.png: mask without an image (no lonely.* in {root})"


def test_class_folders_report(tmp_path: Path) -> None:
    root = class_folders(tmp_path)
    report = check(open_dataset(root))
    assert report.ok and report.notices == []
    assert [(c.name, c.images) for c in report.classes] == [("blowhole", 2), ("crack", 1)]
    assert report.defect_free == 2 and len(report.sizes) == 5  # every image its own size


def test_class_folder_rules(tmp_path: Path) -> None:
    root = class_folders(tmp_path)
    free = root / "MT_Free" / "Imgs" / "exp_0.png"
    height, width = cv2.imread(str(free), cv2.IMREAD_UNCHANGED).shape
    write_mask(free, binary_mask(height, width))  # defect pixels in a defect-free folder
    crack = root / "MT_Crack" / "Imgs" / "exp_0.png"
    height, width = cv2.imread(str(crack), cv2.IMREAD_UNCHANGED).shape
    write_mask(crack, np.zeros((height, width), np.uint8))  # an empty mask in a defect folder
    (root / "MT_Blowhole" / "Imgs" / "exp_1.png").unlink()  # a defect image without a mask
    report = check(open_dataset(root))
    assert sorted(p.replace(str(root), "ROOT") for p in report.problems) == [
        "ROOT/MT_Blowhole/Imgs/exp_1.jpg: no mask: expected ROOT/MT_Blowhole/Imgs/exp_1.png",
        "ROOT/MT_Free/Imgs/exp_0.png: 6 px marked as defect, but its folder MT_Free holds "
        "defect-free images (no_defect)",
    ]
    assert [n.replace(str(root), "ROOT") for n in report.notices] == [
        "ROOT/MT_Crack/Imgs/exp_0.png: mask is empty: the image counts as defect-free "
        "although its folder MT_Crack is class 2 (crack)"
    ]


def test_class_folders_from_dataset_yaml(tmp_path: Path) -> None:
    root = class_folders(tmp_path)
    (root / "MT_Other").mkdir()
    write_image(root / "MT_Other" / "x.jpg")
    (root / "dataset.yaml").write_text(
        "classes:\n"
        "  - {name: crack, folder: MT_Crack}\n"
        "  - {name: hole, folder: MT_Blowhole, colour: '#00ff00'}\n"
        "  - {name: fray, folder: MT_Fray}\n"
        "no_defect: [MT_Free]\n"
    )
    dataset = open_dataset(root)
    assert dataset.spec.names == ("crack", "hole", "fray")
    assert dataset.spec.classes[1].colour == (0, 255, 0)
    report = check(dataset)
    assert sorted(p.replace(str(root), "ROOT") for p in report.problems) == [
        "ROOT/MT_Fray: no such folder for class 3",
        "ROOT/MT_Other: neither a class in dataset.yaml nor in no_defect: its images are not read",
    ]
    assert [(c.name, c.images) for c in report.classes] == [("crack", 1), ("hole", 2), ("fray", 0)]


def test_severstal_problems(tmp_path: Path) -> None:
    root = severstal(tmp_path, rows="a.jpg,1,1 10\nghost.jpg,2,1 5\n")
    write_image(root / "train_images" / "b.jpg", 256, 800)  # the RLE numbers 1600×256 pixels
    report = check(open_dataset(root))
    assert sorted(p.replace(str(root), "ROOT") for p in report.problems) == [
        "ROOT/train.csv: ghost.jpg: has label rows but no file in ROOT/train_images",
        "ROOT/train_images/b.jpg: image is 800×256, but the run-length codes of train.csv are "
        "for 1600×256",
    ]
    assert report.defect_free == 1 and report.classes[0].images == 1  # clean.jpg has no rows


def test_severstal_overlap_when_declared_exclusive(tmp_path: Path) -> None:
    root = severstal(tmp_path, rows="a.jpg,1,1 10\na.jpg,2,5 10\n")
    (root / "dataset.yaml").write_text("exclusive: true\n")
    (problem,) = check(open_dataset(root)).problems
    assert problem.endswith(
        "a.jpg: 6 px belong to two classes, but the classes are exclusive "
        "(exclusive: false in dataset.yaml if they may)"
    )


def test_progress_is_called_for_every_image(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    check(
        open_dataset(folders_with_yaml(tmp_path)), lambda done, total: calls.append((done, total))
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
