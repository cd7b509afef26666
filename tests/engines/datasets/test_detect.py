"""Each layout is detected from the folder and opened as the common `Dataset`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from defectd.engines.classes import class_colour
from defectd.engines.datasets import (
    FORMATS,
    DatasetError,
    detect_format,
    open_dataset,
    to_label_map,
)
from defectd.engines.errors import InvalidInput
from tests.engines.datasets.helpers import (
    class_folders,
    image_mask_folders,
    label_map,
    severstal,
    side_by_side,
    write_image,
    write_mask,
)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (severstal, "severstal"),
        (image_mask_folders, "image-mask-folders"),
        (side_by_side, "side-by-side"),
        (class_folders, "class-folders"),
    ],
)
def test_each_layout_is_detected(
    build: Callable[[Path], Path], expected: str, tmp_path: Path
) -> None:
    build(tmp_path)
    assert detect_format(tmp_path) == expected
    assert open_dataset(tmp_path).format == expected
    assert set(FORMATS) == {"severstal", "image-mask-folders", "side-by-side", "class-folders"}


def test_an_unknown_layout_names_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("x\n")
    with pytest.raises(InvalidInput, match=r"not a data set layout .*severstal.*class-folders"):
        detect_format(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such data set folder"):
        open_dataset(tmp_path / "missing")


def test_dataset_yaml_names_the_format(tmp_path: Path) -> None:
    # A folder of images + masks that is not called images/ + masks/.
    image_mask_folders(tmp_path / "x")
    (tmp_path / "x" / "images").rename(tmp_path / "x" / "pictures")
    (tmp_path / "x" / "dataset.yaml").write_text(
        "format: image-mask-folders\nimages_dir: pictures\n"
    )
    assert detect_format(tmp_path / "x") == "image-mask-folders"
    assert len(open_dataset(tmp_path / "x")) == 3


def test_label_maps_become_class_planes(tmp_path: Path) -> None:
    dataset = open_dataset(image_mask_folders(tmp_path))
    # Without dataset.yaml the classes are the values the masks hold: 1..3.
    assert dataset.spec.names == ("class 1", "class 2", "class 3")
    assert dataset.spec.classes[1].colour == class_colour(2)
    assert "classes from the mask values (1, 2, 3)" in dataset.spec.source
    assert dataset.image_ids == ["000001.png", "000002.png", "000003.png"]
    sample = dataset.sample(1)
    assert sample.image.dtype == np.uint8 and sample.image.shape == (8, 12)
    assert sample.masks.shape == (3, 8, 12) and sample.classes == (2, 3)
    np.testing.assert_array_equal(to_label_map(sample.masks), label_map(8, 12, (2, 3)))
    assert dataset.sample(2).classes == ()


def test_side_by_side_pairs_by_stem(tmp_path: Path) -> None:
    dataset = open_dataset(side_by_side(tmp_path))
    assert dataset.image_ids == ["frame0.jpg", "frame1.jpg", "frame2.jpg"]
    assert dataset.sample(0).classes == (1,)


def test_class_folders_take_the_class_from_the_folder(tmp_path: Path) -> None:
    dataset = open_dataset(class_folders(tmp_path))
    spec = dataset.spec
    assert spec.mask_kind == "binary" and spec.exclusive
    assert [(c.id, c.name, c.folder) for c in spec.classes] == [
        (1, "blowhole", "MT_Blowhole"),
        (2, "crack", "MT_Crack"),
    ]
    assert spec.no_defect_folders == ("MT_Free",)
    assert dataset.image_ids[0] == "MT_Blowhole/Imgs/exp_0.jpg"
    assert len(dataset) == 5
    crack = dataset.sample(dataset.image_ids.index("MT_Crack/Imgs/exp_0.jpg"))
    # values > 127 are the class: the 255 block and the 200 edge, not the 40 halo
    assert crack.classes == (2,) and int(crack.masks[1].sum()) == 6
    assert dataset.sample(dataset.image_ids.index("MT_Free/Imgs/exp_0.jpg")).classes == ()


def test_class_folder_images_directly_in_the_folder(tmp_path: Path) -> None:
    class_folders(tmp_path, sub="")
    dataset = open_dataset(tmp_path)
    assert dataset.format == "class-folders" and dataset.image_ids[0] == "MT_Blowhole/exp_0.jpg"


def test_severstal_wraps_the_existing_reader(tmp_path: Path) -> None:
    dataset = open_dataset(severstal(tmp_path))
    assert dataset.spec.names == ("pits", "crazing", "scratches", "patches")
    assert not dataset.spec.exclusive and dataset.spec.no_defect_rule == "missing-mask"
    assert dataset.image_ids == ["a.jpg", "b.jpg", "clean.jpg"]
    assert dataset.size("a.jpg") == (256, 1600)
    sample = dataset.sample(1)
    assert sample.masks.shape == (4, 256, 1600) and sample.classes == (3,)
    assert dataset.sample(2).classes == ()


def test_mixed_sizes_are_kept_as_they_are(tmp_path: Path) -> None:
    sizes = [(8, 12), (20, 7), (31, 64)]
    dataset = open_dataset(image_mask_folders(tmp_path, sizes=sizes))
    for index, size in enumerate(sizes):
        image_id = dataset.image_ids[index]
        assert dataset.size(image_id) == size
        sample = dataset.sample(index)
        assert sample.image.shape == size and sample.masks.shape[1:] == size


def test_sample_raises_naming_the_file_when_the_mask_is_bad(tmp_path: Path) -> None:
    image_mask_folders(tmp_path)
    write_image(tmp_path / "masks" / "000001.png", 9, 12)  # noise: wrong size, stray values
    (tmp_path / "dataset.yaml").write_text("classes: [inclusion, patches, scratches]\n")
    dataset = open_dataset(tmp_path)
    with pytest.raises(
        DatasetError,
        match=r"000001.png: mask is 12×9, its image .* is 12×8; .*"
        r"values .* are not classes \(classes: 1 inclusion, 2 patches",
    ):
        dataset.sample(0)


def test_to_label_map_refuses_overlapping_masks() -> None:
    masks = np.zeros((2, 2, 2), dtype=np.uint8)
    masks[:, 0, 0] = 1
    with pytest.raises(InvalidInput, match="not exclusive"):
        to_label_map(masks)


def test_a_mask_suffix_lets_images_be_png_too(tmp_path: Path) -> None:
    for index in range(2):
        write_image(tmp_path / f"f{index}.png", seed=index)
        write_mask(tmp_path / f"f{index}_mask.png", label_map(8, 12, (1,)))
    (tmp_path / "dataset.yaml").write_text(
        "format: side-by-side\nmask_suffix: _mask.png\nimage_suffixes: [.png]\nclasses: [a]\n"
    )
    dataset = open_dataset(tmp_path)
    assert dataset.image_ids == ["f0.png", "f1.png"] and dataset.sample(1).classes == (1,)


def test_severstal_names_from_dataset_yaml(tmp_path: Path) -> None:
    root = severstal(tmp_path)
    (root / "dataset.yaml").write_text("classes: [a, b, c, d]\n")
    assert open_dataset(root).spec.names == ("a", "b", "c", "d")
