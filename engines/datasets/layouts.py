"""Where each folder format keeps its image/mask pairs: list them as `Entry`s, with what
does not fit (a mask without an image, two images one mask would serve, a stray file).

- ``image-mask-folders``: ``images/<stem>.<ext>`` + ``masks/<stem>.png``; ids are file names;
- ``side-by-side``: ``<stem>.jpg`` + ``<stem>.png`` in one folder; ids are file names;
- ``class-folders``: ``<Class>/[<sub>/]<stem>.jpg`` + ``<stem>.png`` per class folder; ids are
  paths from the data set's root (``MT_Blowhole/Imgs/exp1_num_4944.jpg``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from defectd.engines.datasets.folders import Entry
from defectd.engines.datasets.spec import DatasetSpec, class_spec
from defectd.engines.errors import InvalidInput

MAX_NAMED = 3


@dataclass
class Listing:
    """What listing a folder found: pairs, problems, notices and the files it did not read."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)

    def finish(self) -> Listing:
        """Turn the ignored files into one notice (nothing is left out without a word)."""
        if self.ignored:
            named = ", ".join(str(p) for p in self.ignored[:MAX_NAMED])
            more = (
                f" and {len(self.ignored) - MAX_NAMED} more"
                if len(self.ignored) > MAX_NAMED
                else ""
            )
            self.notices.append(
                f"{len(self.ignored)} file(s) neither image nor mask were not read: {named}{more}"
            )
        return self


def is_documentation(path: Path) -> bool:
    """Files a data set may hold beside its pictures that need no word (yaml, notes, hidden)."""
    return path.name.startswith(".") or path.suffix.lower() in (".yaml", ".yml", ".md", ".txt")


def has_images(folder: Path, spec: DatasetSpec) -> bool:
    """Whether `folder` holds at least one image file."""
    return any(p.is_file() and spec.is_image(p.name) for p in folder.iterdir())


def subfolders(folder: Path) -> list[Path]:
    """The folders in `folder`, hidden ones left out, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def pair_folder(
    listing: Listing,
    root: Path,
    images: Path,
    masks: Path,
    spec: DatasetSpec,
    *,
    ids_from_root: bool = False,
    class_id: int | None = None,
    folder: str | None = None,
    defect_free: bool = False,
) -> None:
    """Pair the images in `images` with the masks in `masks` (may be the same folder)."""
    suffix = spec.mask_suffix
    images_by_stem: dict[str, list[Path]] = {}
    masks_by_stem: dict[str, Path] = {}
    for path in sorted(images.iterdir()):
        if path.is_file() and spec.is_image(path.name):
            images_by_stem.setdefault(path.stem, []).append(path)
        elif masks == images and path.is_file() and path.name.lower().endswith(suffix.lower()):
            masks_by_stem[path.name[: -len(suffix)]] = path
        elif not is_documentation(path):
            listing.ignored.append(path)
    if masks != images:
        for path in sorted(masks.iterdir()):
            if path.is_file() and path.name.lower().endswith(suffix.lower()):
                masks_by_stem[path.name[: -len(suffix)]] = path
            elif not is_documentation(path):
                listing.ignored.append(path)
    for stem, paths in images_by_stem.items():
        expected = masks / f"{stem}{suffix}"
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            listing.problems.append(
                f"{images}: {names}: images with one stem; the mask {expected.name} cannot tell "
                "them apart (rename all but one)"
            )
            continue
        image = paths[0]
        image_id = image.relative_to(root).as_posix() if ids_from_root else image.name
        listing.entries.append(
            Entry(
                image_id,
                image,
                masks_by_stem.get(stem),
                expected,
                class_id=class_id,
                defect_free=defect_free or spec.no_defect_rule == "missing-mask",
                folder=folder,
            )
        )
    for stem, mask in sorted(masks_by_stem.items()):
        if stem not in images_by_stem:
            listing.problems.append(f"{mask}: mask without an image (no {stem}.* in {images})")


def list_image_mask_folders(root: Path, spec: DatasetSpec) -> Listing:
    """``images/`` + ``masks/`` (names from the spec), or images and masks in one folder."""
    images, masks = root / spec.images_dir, root / spec.masks_dir
    for folder, key in ((images, "images_dir"), (masks, "masks_dir")):
        if not folder.is_dir():
            raise InvalidInput(f"{folder}: no such folder (the {spec.format} layout, {key})")
    listing = Listing()
    pair_folder(listing, root, images, masks, spec)
    if images != root:
        listing.ignored += [
            p for p in root.iterdir() if p not in (images, masks) and not is_documentation(p)
        ]
    return listing.finish()


def _class_names(folders: list[str]) -> list[str]:
    """Folder names as class names: lower case, without a prefix they all share (``MT_``)."""
    prefix = folders[0] if len(folders) > 1 else ""
    for name in folders[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    cut = max(prefix.rfind("_"), prefix.rfind("-")) + 1
    return [name[cut:].lower() or name.lower() for name in folders]


def class_folders_spec(root: Path, spec: DatasetSpec) -> DatasetSpec:
    """`spec` with its classes and defect-free folders filled in from the folders on disk.

    Without classes in dataset.yaml every folder is a class, in sorted order, except those
    named like ``*Free*`` (and those listed in no_defect), which hold defect-free images.
    """
    names = [p.name for p in subfolders(root)]
    given = {c.folder or c.name for c in spec.classes}
    free = set(spec.no_defect_folders)
    free |= {n for n in names if "free" in n.lower() and n not in given}
    if spec.classes:
        return replace(spec, no_defect_folders=tuple(sorted(free)))
    folders = [n for n in names if n not in free]
    classes = tuple(
        class_spec(i + 1, name, folder)
        for i, (name, folder) in enumerate(zip(_class_names(folders), folders, strict=True))
    )
    return replace(spec, classes=classes, no_defect_folders=tuple(sorted(free)))


def _images_folder(folder: Path, spec: DatasetSpec, listing: Listing) -> Path | None:
    """Where a class folder's images are: `images_dir`, or itself, or its one subfolder."""
    if spec.images_dir:
        inside = folder / spec.images_dir
        if inside.is_dir():
            return inside
        listing.problems.append(f"{folder}: no {spec.images_dir}/ folder (images_dir)")
        return None
    if has_images(folder, spec):
        return folder
    inner = subfolders(folder)
    if len(inner) == 1:
        return inner[0]
    listing.problems.append(
        f"{folder}: no images, and {len(inner)} subfolders: name the one holding them with "
        "images_dir in dataset.yaml"
    )
    return None


def list_class_folders(root: Path, spec: DatasetSpec) -> Listing:
    """One folder per class (and defect-free folders), images and masks side by side."""
    listing = Listing()
    on_disk = {p.name: p for p in subfolders(root)}
    by_folder = {c.folder or c.name: c.id for c in spec.classes}
    for folder, class_id in by_folder.items():
        if folder not in on_disk:
            listing.problems.append(f"{root / folder}: no such folder for class {class_id}")
    for folder in spec.no_defect_folders:
        if folder not in on_disk:
            listing.problems.append(f"{root / folder}: no such folder (no_defect)")
    for name, path in on_disk.items():
        free = name in spec.no_defect_folders
        if not free and name not in by_folder:
            listing.problems.append(
                f"{path}: neither a class in dataset.yaml nor in no_defect: its images are not read"
            )
            continue
        images = _images_folder(path, spec, listing)
        if images is None:
            continue
        pair_folder(
            listing,
            root,
            images,
            images,
            spec,
            ids_from_root=True,
            class_id=None if free else by_folder[name],
            folder=name,
            defect_free=free,
        )
    listing.ignored += [p for p in root.iterdir() if p.is_file() and not is_documentation(p)]
    return listing.finish()
