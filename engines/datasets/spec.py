"""What a labelled data set is, independent of its layout: `DatasetSpec` and its defaults.

A spec comes from the folder's ``dataset.yaml`` (engines/datasets/specfile.py) laid over the
defaults of the detected format. Without a ``dataset.yaml``:

- ``severstal``: the four Severstal classes (`SEVERSTAL_NAMES`), run-length rows in
  ``train.csv``, classes not exclusive, images without rows are defect-free (Kaggle's rule);
- ``image-mask-folders`` / ``side-by-side``: label maps (pixel value = class id, 0 background,
  one class per pixel), the classes found in the masks themselves (`classes_from_values`), and
  an image without a mask is a problem;
- ``class-folders``: binary masks (> 127 = the folder's class), one class per folder in
  sorted order, and folders named like ``*Free*`` hold defect-free images.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from defectd.engines.classes import BGR, MAX_CLASSES, SEVERSTAL_NAMES, DefectClass, class_colour

MaskKind = Literal["label_map", "binary", "rle"]
NoDefectRule = Literal["missing-mask"]

SEVERSTAL = "severstal"
IMAGE_MASK_FOLDERS = "image-mask-folders"
SIDE_BY_SIDE = "side-by-side"
CLASS_FOLDERS = "class-folders"
FORMATS: tuple[str, ...] = (SEVERSTAL, IMAGE_MASK_FOLDERS, SIDE_BY_SIDE, CLASS_FOLDERS)
MASK_KINDS: tuple[str, ...] = ("label_map", "binary", "rle")
NO_DEFECT_RULES: tuple[str, ...] = ("missing-mask",)

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# A binary mask marks its class with values above this (soft, anti-aliased edges included).
BINARY_THRESHOLD = 127


@dataclass(frozen=True)
class ClassSpec:
    """One class of a data set: id (1-based), name, colour (BGR) and where its labels are.

    `value` is the pixel value that marks the class in a label map (the id unless
    dataset.yaml says otherwise); `folder` is the folder holding its images (class-folders).
    """

    id: int
    name: str
    colour: BGR
    value: int
    folder: str | None = None

    def as_defect_class(self) -> DefectClass:
        """The class as the rest of defectd names and draws it."""
        return DefectClass(self.id, self.name, self.colour)


def class_spec(class_id: int, name: str, folder: str | None = None) -> ClassSpec:
    """A class with the default colour and label-map value (its id)."""
    return ClassSpec(class_id, name, class_colour(class_id), class_id, folder)


@dataclass(frozen=True)
class DatasetSpec:
    """The description of one data set; masks are read and checked against it.

    - `classes`: classes 1..N in id order (a sample's masks have one plane per class);
    - `mask_kind`: ``label_map`` (pixel value = class value, 0 background), ``binary`` (one
      class, values > 127 set) or ``rle`` (Severstal's run-length rows);
    - `exclusive`: at most one class per pixel (label maps always; Severstal: no);
    - `no_defect_rule`: ``missing-mask`` when an image without a mask is defect-free; None
      when a missing mask is a problem;
    - `no_defect_folders`: class-folders whose images are all defect-free (``MT_Free``);
    - `images_dir` / `masks_dir`: folder names ("" = the folder itself; for class-folders
      `images_dir` is the subfolder of each class folder, "" = found: the class folder or its
      one subfolder); `image_suffixes`, `mask_suffix`: a mask is the image's stem + suffix;
    - `format`: the layout (one of `FORMATS`); `source`: where this spec came from.
    """

    classes: tuple[ClassSpec, ...]
    mask_kind: MaskKind
    exclusive: bool
    no_defect_rule: NoDefectRule | None = None
    no_defect_folders: tuple[str, ...] = ()
    images_dir: str = "images"
    masks_dir: str = "masks"
    image_suffixes: tuple[str, ...] = IMAGE_SUFFIXES
    mask_suffix: str = ".png"
    format: str = IMAGE_MASK_FOLDERS
    source: str = "defaults"
    # True when no class list was given and the classes are still to be found in the masks.
    classes_from_masks: bool = False

    @property
    def num_classes(self) -> int:
        """How many classes (planes of a sample's masks)."""
        return len(self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        """Class names in id order."""
        return tuple(c.name for c in self.classes)

    def defect_classes(self) -> tuple[DefectClass, ...]:
        """The classes as `DefectClass`es (id, name, colour)."""
        return tuple(c.as_defect_class() for c in self.classes)

    def is_image(self, name: str) -> bool:
        """Whether a file called `name` is an image (and not a mask beside it)."""
        lowered = name.lower()
        if self.shares_folder and lowered.endswith(self.mask_suffix.lower()):
            return False
        return not name.startswith(".") and lowered.endswith(self.image_suffixes)

    @property
    def shares_folder(self) -> bool:
        """Whether images and masks lie side by side in one folder."""
        return self.format in (SIDE_BY_SIDE, CLASS_FOLDERS) or self.images_dir == self.masks_dir


def default_spec(format_name: str) -> DatasetSpec:
    """The spec a folder of `format_name` gets without a dataset.yaml (see the module doc)."""
    if format_name == SEVERSTAL:
        classes = tuple(class_spec(i + 1, name) for i, name in enumerate(SEVERSTAL_NAMES))
        return DatasetSpec(
            classes,
            "rle",
            exclusive=False,
            no_defect_rule="missing-mask",
            images_dir="train_images",
            masks_dir="train.csv",
            image_suffixes=(".jpg", ".jpeg", ".png"),
            format=SEVERSTAL,
        )
    if format_name == IMAGE_MASK_FOLDERS:
        return DatasetSpec(
            (), "label_map", exclusive=True, format=IMAGE_MASK_FOLDERS, classes_from_masks=True
        )
    if format_name == SIDE_BY_SIDE:
        return DatasetSpec(
            (),
            "label_map",
            exclusive=True,
            images_dir="",
            masks_dir="",
            image_suffixes=tuple(s for s in IMAGE_SUFFIXES if s != ".png"),
            format=SIDE_BY_SIDE,
            classes_from_masks=True,
        )
    if format_name == CLASS_FOLDERS:
        return DatasetSpec(
            (), "binary", exclusive=True, images_dir="", masks_dir="", format=CLASS_FOLDERS
        )
    raise ValueError(f"unknown format {format_name!r}; known: {', '.join(FORMATS)}")


def classes_from_values(spec: DatasetSpec, values: Iterable[int]) -> DatasetSpec:
    """`spec` with the classes the masks hold, found from their pixel values.

    Values 1..64 are label-map classes 1..max (named ``class N``); a set with values above
    64 is taken as binary masks of one class ``defect`` (0/255, soft edges allowed).
    """
    present = sorted(v for v in set(values) if v > 0)
    if present and present[-1] > MAX_CLASSES:
        return replace(
            spec,
            classes=(class_spec(1, "defect"),),
            mask_kind="binary",
            classes_from_masks=False,
            source=f"{spec.source}; binary masks (values up to {present[-1]}), one class",
        )
    top = present[-1] if present else 0
    found = ", ".join(map(str, present)) or "none"
    return replace(
        spec,
        classes=tuple(class_spec(i, f"class {i}") for i in range(1, top + 1)),
        classes_from_masks=False,
        source=f"{spec.source}; classes from the mask values ({found})",
    )
