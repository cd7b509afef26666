"""``dataset.yaml``: read strictly and laid over the format's defaults as a `DatasetSpec`.

Like the daemon config, every problem is collected and reported at once as
``FILE: key: problem`` lines in one `SpecError`: unknown keys (with "did you mean"), wrong
types, values out of range, keys that would have no effect for the format, duplicate keys.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import yaml

from defectd.engines.classes import BGR, MAX_CLASSES
from defectd.engines.datasets.spec import (
    CLASS_FOLDERS,
    FORMATS,
    MASK_KINDS,
    NO_DEFECT_RULES,
    SEVERSTAL,
    ClassSpec,
    DatasetSpec,
    MaskKind,
    NoDefectRule,
    class_spec,
    default_spec,
)
from defectd.engines.errors import InvalidInput
from defectd.engines.strict_yaml import StrictLoader

SPEC_NAME = "dataset.yaml"
KEYS = (
    "format",
    "classes",
    "mask_kind",
    "exclusive",
    "no_defect_rule",
    "no_defect",
    "images_dir",
    "masks_dir",
    "image_suffixes",
    "mask_suffix",
)
CLASS_KEYS = ("id", "name", "colour", "value", "folder")
_HEX = re.compile(r"#([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})")


class SpecError(InvalidInput):
    """A dataset.yaml that cannot be used; `problems` holds one ``FILE: key: problem`` each."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def read_spec_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a dataset.yaml (empty file: {}); `SpecError` if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.load(text, Loader=StrictLoader)
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"{path}: cannot be read: {exc}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError([f"{path}: {where}{exc.problem or 'not valid YAML'}"]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{path}: YAML syntax error: {exc}"]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError([f"{path}: expected a mapping of keys, got {type(raw).__name__}"])
    return cast(dict[str, Any], raw)


def spec_format(mapping: dict[str, Any], source: str) -> str | None:
    """The format the mapping names (None when it names none); `SpecError` if unknown."""
    value = mapping.get("format")
    if value is None or value in FORMATS:
        return value
    raise SpecError([f"{source}: format: {value!r} is not one of {', '.join(FORMATS)}"])


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.source}: {key}: {message}")

    def unknown(self, key: object, known: Sequence[str], where: str = "") -> None:
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.add(f"{where}{key}", f"unknown key{hint} (known here: {', '.join(known)})")


def _text(value: object, key: str, problems: _Problems, empty: bool = True) -> str | None:
    if isinstance(value, str) and (empty or value):
        return value
    problems.add(key, f"expected {'a' if empty else 'a non-empty'} string, got {value!r}")
    return None


def _int(value: object, key: str, low: int, high: int, problems: _Problems) -> int | None:
    if type(value) is int and low <= value <= high:
        return value
    problems.add(key, f"expected a whole number in {low}..{high}, got {value!r}")
    return None


def _colour(value: object, key: str, problems: _Problems) -> BGR | None:
    found = _HEX.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        problems.add(key, f"expected an RGB colour like '#ff2828', got {value!r}")
        return None
    red, green, blue = (int(part, 16) for part in found.groups())
    return (blue, green, red)


def _strings(value: object, key: str, problems: _Problems) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    problems.add(key, f"expected a list of names, got {value!r}")
    return None


def _one_class(
    raw: object, index: int, spec: DatasetSpec, problems: _Problems
) -> tuple[int | None, ClassSpec] | None:
    """(id given or None, the class at position index+1) or None (problems added)."""
    where = f"classes[{index}]"
    if isinstance(raw, str):
        entry: dict[Any, Any] = {"name": raw}
    elif isinstance(raw, dict):
        entry = raw
    else:
        problems.add(where, f"expected a class name or a mapping of {CLASS_KEYS}, got {raw!r}")
        return None
    count = len(problems.lines)
    for key in entry:
        if key not in CLASS_KEYS:
            problems.unknown(key, CLASS_KEYS, f"{where}.")
    name = _text(entry.get("name"), f"{where}.name", problems, empty=False)
    given = None
    if "id" in entry:
        given = _int(entry["id"], f"{where}.id", 1, MAX_CLASSES, problems)
    class_id = given or index + 1
    colour = None
    if "colour" in entry:
        colour = _colour(entry["colour"], f"{where}.colour", problems)
    value = class_id
    if "value" in entry:
        if spec.mask_kind != "label_map":
            problems.add(f"{where}.value", "only label maps have class values: leave it out")
        value = _int(entry["value"], f"{where}.value", 1, 255, problems) or class_id
    folder = None
    if "folder" in entry:
        if spec.format != CLASS_FOLDERS:
            problems.add(f"{where}.folder", "only class-folders name a folder: leave it out")
        folder = _text(entry["folder"], f"{where}.folder", problems, empty=False)
    if len(problems.lines) > count or name is None:
        return None
    made = class_spec(class_id, name, folder)
    return given, replace(made, colour=colour or made.colour, value=value)


def _classes(raw: object, spec: DatasetSpec, problems: _Problems) -> tuple[ClassSpec, ...] | None:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CLASSES:
        problems.add("classes", f"expected a list of 1..{MAX_CLASSES} classes, got {raw!r}")
        return None
    parsed = [_one_class(entry, i, spec, problems) for i, entry in enumerate(raw)]
    if any(p is None for p in parsed):
        return None
    pairs = [p for p in parsed if p is not None]
    ids = [given for given, _ in pairs]
    if any(i is not None for i in ids) and sorted(i or 0 for i in ids) != list(
        range(1, len(ids) + 1)
    ):
        problems.add("classes", f"ids must be 1..{len(ids)}, each once (or leave every id out)")
        return None
    classes = sorted((c for _, c in pairs), key=lambda c: c.id)
    for attribute in ("name", "value", "folder"):
        values = [getattr(c, attribute) for c in classes if getattr(c, attribute) is not None]
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            problems.add("classes", f"{attribute} {', '.join(repeated)} given to two classes")
    return tuple(classes)


def _folder_name(mapping: dict[str, Any], key: str, problems: _Problems) -> str | None:
    """The folder `key` names inside the data set (None: not given or not usable)."""
    if key not in mapping:
        return None
    text = _text(mapping[key], key, problems)
    if text is not None and (".." in Path(text).parts or Path(text).is_absolute()):
        problems.add(key, f"{text!r} must be a folder inside the data set")
        return None
    return text


def parse_spec(mapping: dict[str, Any], source: str, format_name: str) -> DatasetSpec:
    """The spec of a `format_name` folder: its defaults with `mapping` (dataset.yaml) over them.

    Raises `SpecError` with every problem found.
    """
    problems = _Problems(source)
    spec = replace(default_spec(format_name), source=source)
    for key in mapping:
        if key not in KEYS:
            problems.unknown(key, KEYS)
    if "mask_kind" in mapping:
        kinds = ("rle",) if format_name == SEVERSTAL else MASK_KINDS[:2]
        if mapping["mask_kind"] in kinds:
            spec = replace(spec, mask_kind=cast(MaskKind, mapping["mask_kind"]))
        else:
            problems.add("mask_kind", f"{mapping['mask_kind']!r} is not one of {', '.join(kinds)}")
    if "exclusive" in mapping:
        if isinstance(mapping["exclusive"], bool):
            spec = replace(spec, exclusive=mapping["exclusive"])
        else:
            problems.add("exclusive", f"expected true or false, got {mapping['exclusive']!r}")
    if spec.mask_kind == "label_map" and not spec.exclusive:
        problems.add("exclusive", "a label map holds one class per pixel: it is always exclusive")
    if "classes" in mapping:
        classes = _classes(mapping["classes"], spec, problems)
        if classes is not None:
            spec = replace(spec, classes=classes, classes_from_masks=False)
            if spec.mask_kind == "binary" and format_name != CLASS_FOLDERS and len(classes) != 1:
                problems.add("classes", "binary masks hold one class (more: use class-folders)")
    if spec.mask_kind == "binary" and spec.classes_from_masks:
        # Binary masks outside class-folders mark one class; nothing to find in the masks.
        spec = replace(spec, classes=(class_spec(1, "defect"),), classes_from_masks=False)
    if "no_defect_rule" in mapping:
        rule = mapping["no_defect_rule"]
        if rule is None or rule in NO_DEFECT_RULES:
            spec = replace(spec, no_defect_rule=cast(NoDefectRule | None, rule))
        else:
            problems.add("no_defect_rule", f"{rule!r} is not one of {NO_DEFECT_RULES} or null")
    if "no_defect" in mapping:
        if format_name != CLASS_FOLDERS:
            problems.add("no_defect", "only class-folders have defect-free folders: leave it out")
        folders = _strings(mapping["no_defect"], "no_defect", problems)
        spec = replace(spec, no_defect_folders=folders or ())
    images_dir = _folder_name(mapping, "images_dir", problems)
    masks_dir = _folder_name(mapping, "masks_dir", problems)
    spec = replace(
        spec,
        images_dir=spec.images_dir if images_dir is None else images_dir,
        masks_dir=spec.masks_dir if masks_dir is None else masks_dir,
    )
    if "image_suffixes" in mapping:
        suffixes = _strings(mapping["image_suffixes"], "image_suffixes", problems)
        if suffixes is not None and not all(s.startswith(".") for s in suffixes):
            problems.add("image_suffixes", f"each starts with a dot, like .jpg: got {suffixes}")
        spec = replace(spec, image_suffixes=tuple(s.lower() for s in suffixes or ()))
    if "mask_suffix" in mapping:
        text = _text(mapping["mask_suffix"], "mask_suffix", problems, empty=False)
        spec = replace(spec, mask_suffix=text or spec.mask_suffix)
    if problems.lines:
        raise SpecError(problems.lines)
    return spec
