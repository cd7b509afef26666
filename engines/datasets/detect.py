"""Which format a folder is in (`detect_format`), and opening it as a `Dataset` (`open_dataset`).

The folder's ``dataset.yaml`` may name the format; otherwise the layout decides, first match
wins: ``train.csv`` + ``train_images/`` is severstal; ``images/`` + ``masks/`` is
image-mask-folders; image files in the folder itself are side-by-side; folders holding images
(directly or one level down) are class-folders.
"""

from __future__ import annotations

from pathlib import Path

from defectd.engines.datasets.base import Dataset
from defectd.engines.datasets.folders import FolderDataset
from defectd.engines.datasets.layouts import (
    class_folders_spec,
    has_images,
    list_class_folders,
    list_image_mask_folders,
    subfolders,
)
from defectd.engines.datasets.maskfile import mask_values
from defectd.engines.datasets.severstal_format import SeverstalFormat
from defectd.engines.datasets.spec import (
    CLASS_FOLDERS,
    IMAGE_MASK_FOLDERS,
    SEVERSTAL,
    SIDE_BY_SIDE,
    classes_from_values,
    default_spec,
)
from defectd.engines.datasets.specfile import (
    SPEC_NAME,
    parse_spec,
    read_spec_mapping,
    spec_format,
)
from defectd.engines.errors import InvalidInput

_LAYOUTS = (
    "train.csv + train_images/ (severstal), images/ + masks/ (image-mask-folders), "
    "x.jpg + x.png in one folder (side-by-side) or one folder of images per class "
    "(class-folders)"
)


def _folder(path: Path | str) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such data set folder")
    return root


def layout_format(root: Path) -> str | None:
    """The format the files in `root` are laid out in, or None when none fits."""
    if (root / "train.csv").is_file() and (root / "train_images").is_dir():
        return SEVERSTAL
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return IMAGE_MASK_FOLDERS
    if has_images(root, default_spec(SIDE_BY_SIDE)):
        return SIDE_BY_SIDE
    spec = default_spec(CLASS_FOLDERS)
    for folder in subfolders(root):
        if has_images(folder, spec) or any(has_images(f, spec) for f in subfolders(folder)):
            return CLASS_FOLDERS
    return None


def _unknown(root: Path) -> InvalidInput:
    return InvalidInput(
        f"{root}: not a data set layout defectd knows: expected {_LAYOUTS}, or `format:` in "
        f"{root / SPEC_NAME} (docs/datasets.md)"
    )


def detect_format(path: Path | str) -> str:
    """The format of the data set folder at `path`: dataset.yaml's ``format:``, else its layout.

    Raises `InvalidInput` naming the layouts known when none fits.
    """
    root = _folder(path)
    spec_path = root / SPEC_NAME
    named = None
    if spec_path.is_file():
        named = spec_format(read_spec_mapping(spec_path), str(spec_path))
    found = named or layout_format(root)
    if found is None:
        raise _unknown(root)
    return found


def open_dataset(path: Path | str, spec_file: Path | str | None = None) -> Dataset:
    """The data set at `path` in whichever format it is, described by its dataset.yaml (or
    `spec_file` in its place, or the format's defaults when there is neither).

    Raises `InvalidInput` (`SpecError` for dataset.yaml) when it cannot be opened at all;
    problems with single files are left for `check` to report, all together.
    """
    root = _folder(path)
    spec_path = Path(spec_file) if spec_file is not None else root / SPEC_NAME
    if spec_file is not None and not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path}: no such dataset.yaml")
    mapping = read_spec_mapping(spec_path) if spec_path.is_file() else None
    named = spec_format(mapping, str(spec_path)) if mapping is not None else None
    format_name = named or layout_format(root)
    if format_name is None:
        raise _unknown(root)
    if mapping is None:
        spec = default_spec(format_name)
    else:
        spec = parse_spec(mapping, str(spec_path), format_name)
    if format_name == SEVERSTAL:
        return SeverstalFormat(root, spec)
    if format_name == CLASS_FOLDERS:
        spec = class_folders_spec(root, spec)
        listing = list_class_folders(root, spec)
    else:
        listing = list_image_mask_folders(root, spec)
    if spec.classes_from_masks:
        spec = classes_from_values(spec, mask_values([e.mask for e in listing.entries if e.mask]))
    if not spec.classes:
        listing.notices.append(f"{root}: no classes: every image is defect-free")
    return FolderDataset(root, spec, listing.entries, listing.problems, listing.notices)
