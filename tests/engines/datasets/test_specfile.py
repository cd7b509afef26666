"""dataset.yaml: read strictly, every problem as ``FILE: key: problem``, laid over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectd.engines.classes import class_colour
from defectd.engines.datasets import SpecError, check, default_spec, open_dataset, parse_spec
from defectd.engines.datasets.specfile import read_spec_mapping
from tests.engines.datasets.helpers import image_mask_folders, label_map, write_mask

SOURCE = "data/dataset.yaml"


def problems(mapping: dict[str, object], format_name: str = "image-mask-folders") -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(mapping, SOURCE, format_name)
    return caught.value.problems


def test_defaults_per_format() -> None:
    severstal = default_spec("severstal")
    assert severstal.names == ("pits", "crazing", "scratches", "patches")
    assert (severstal.mask_kind, severstal.exclusive) == ("rle", False)
    folders = default_spec("image-mask-folders")
    assert (folders.mask_kind, folders.exclusive, folders.no_defect_rule) == (
        "label_map",
        True,
        None,
    )
    assert folders.classes_from_masks and (folders.images_dir, folders.masks_dir) == (
        "images",
        "masks",
    )
    assert default_spec("side-by-side").is_image("x.jpg")
    assert not default_spec("side-by-side").is_image("x.png")  # the png beside it is the mask
    assert default_spec("class-folders").mask_kind == "binary"
    with pytest.raises(ValueError, match="unknown format 'coco'"):
        default_spec("coco")


def test_a_full_spec() -> None:
    spec = parse_spec(
        {
            "mask_kind": "label_map",
            "classes": [
                "inclusion",
                {"name": "patches", "colour": "#102030", "value": 128},
                {"name": "scratches"},
            ],
            "no_defect_rule": "missing-mask",
            "images_dir": "img",
            "masks_dir": "gt",
            "image_suffixes": [".JPG", ".bmp"],
            "mask_suffix": "_label.png",
        },
        SOURCE,
        "image-mask-folders",
    )
    assert spec.names == ("inclusion", "patches", "scratches")
    assert [c.value for c in spec.classes] == [1, 128, 3]
    assert spec.classes[0].colour == class_colour(1)
    assert spec.classes[1].colour == (0x30, 0x20, 0x10)  # written RGB, kept BGR
    assert spec.no_defect_rule == "missing-mask" and not spec.classes_from_masks
    assert spec.image_suffixes == (".jpg", ".bmp") and spec.mask_suffix == "_label.png"
    assert spec.source == SOURCE


def test_ids_may_be_given_in_any_order() -> None:
    spec = parse_spec(
        {"classes": [{"id": 2, "name": "b"}, {"id": 1, "name": "a"}]}, SOURCE, "side-by-side"
    )
    assert [(c.id, c.name) for c in spec.classes] == [(1, "a"), (2, "b")]


def test_unknown_keys_are_errors_with_a_hint() -> None:
    assert problems({"mask_knd": "binary", "classes": [{"name": "a", "colour_": "#000000"}]}) == [
        f"{SOURCE}: mask_knd: unknown key; did you mean 'mask_kind'? (known here: format, "
        "classes, mask_kind, exclusive, no_defect_rule, no_defect, images_dir, masks_dir, "
        "image_suffixes, mask_suffix)",
        f"{SOURCE}: classes[0].colour_: unknown key; did you mean 'colour'? (known here: id, "
        "name, colour, value, folder)",
    ]


def test_every_bad_value_is_reported_at_once() -> None:
    found = problems(
        {
            "mask_kind": "rgb",
            "exclusive": "yes please",
            "classes": [{"name": ""}, {"name": "b", "colour": "red", "value": 300}],
            "no_defect_rule": "always",
            "no_defect": ["Free"],
            "images_dir": "../elsewhere",
            "image_suffixes": ["jpg"],
        }
    )
    assert found == [
        f"{SOURCE}: mask_kind: 'rgb' is not one of label_map, binary",
        f"{SOURCE}: exclusive: expected true or false, got 'yes please'",
        f"{SOURCE}: classes[0].name: expected a non-empty string, got ''",
        f"{SOURCE}: classes[1].colour: expected an RGB colour like '#ff2828', got 'red'",
        f"{SOURCE}: classes[1].value: expected a whole number in 1..255, got 300",
        f"{SOURCE}: no_defect_rule: 'always' is not one of ('missing-mask',) or null",
        f"{SOURCE}: no_defect: only class-folders have defect-free folders: leave it out",
        f"{SOURCE}: images_dir: '../elsewhere' must be a folder inside the data set",
        f"{SOURCE}: image_suffixes: each starts with a dot, like .jpg: got ('jpg',)",
    ]


def test_rules_between_keys() -> None:
    assert problems({"exclusive": False}) == [
        f"{SOURCE}: exclusive: a label map holds one class per pixel: it is always exclusive"
    ]
    assert problems({"mask_kind": "binary", "classes": ["a", "b"]}) == [
        f"{SOURCE}: classes: binary masks hold one class (more: use class-folders)"
    ]
    assert problems({"classes": ["a", {"name": "a", "folder": "x"}]}) == [
        f"{SOURCE}: classes[1].folder: only class-folders name a folder: leave it out"
    ]
    assert problems({"classes": ["a", "a"]}) == [f"{SOURCE}: classes: name a given to two classes"]
    assert problems({"classes": [{"id": 1, "name": "a"}, {"id": 3, "name": "b"}]}) == [
        f"{SOURCE}: classes: ids must be 1..2, each once (or leave every id out)"
    ]
    assert problems({"classes": []}) == [
        f"{SOURCE}: classes: expected a list of 1..64 classes, got []"
    ]
    assert problems({"mask_kind": "label_map"}, "severstal") == [
        f"{SOURCE}: mask_kind: 'label_map' is not one of rle"
    ]


def test_the_file_itself(tmp_path: Path) -> None:
    path = tmp_path / "dataset.yaml"
    path.write_text("classes: [a]\nclasses: [b]\n")
    with pytest.raises(
        SpecError, match=r"dataset.yaml: line 2, column 1: key 'classes' appears twice"
    ):
        read_spec_mapping(path)
    path.write_text("classes: [a\n")
    with pytest.raises(SpecError, match=r"dataset.yaml: line"):
        read_spec_mapping(path)
    path.write_text("- a\n")
    with pytest.raises(SpecError, match="expected a mapping of keys, got list"):
        read_spec_mapping(path)
    path.write_text("")
    assert read_spec_mapping(path) == {}
    path.write_text("format: coco\n")
    with pytest.raises(SpecError, match="format: 'coco' is not one of severstal, "):
        open_dataset(tmp_path)


def test_class_values_are_read_from_the_masks(tmp_path: Path) -> None:
    # A line that saved its label maps as 0/128/255 so that people can see them.
    root = image_mask_folders(tmp_path, classes=[(1,)])
    mask = label_map(8, 12, (1, 2)) * 127
    mask[mask == 254] = 255
    write_mask(root / "masks" / "000001.png", mask)
    (root / "dataset.yaml").write_text(
        "classes:\n  - {name: dark, value: 127}\n  - {name: bright, value: 255}\n"
    )
    report = check(open_dataset(root))
    assert report.ok and [c.images for c in report.classes] == [1, 1]


def test_a_spec_file_from_elsewhere(tmp_path: Path) -> None:
    root = image_mask_folders(tmp_path / "data")
    spec = tmp_path / "neu.yaml"
    spec.write_text("classes: [inclusion, patches, scratches]\n")
    assert open_dataset(root, spec).spec.names == ("inclusion", "patches", "scratches")
    with pytest.raises(FileNotFoundError, match=r"no such dataset\.yaml"):
        open_dataset(root, tmp_path / "missing.yaml")


def test_binary_without_classes_is_one_class() -> None:
    spec = parse_spec({"mask_kind": "binary"}, SOURCE, "side-by-side")
    assert spec.names == ("defect",) and not spec.classes_from_masks
