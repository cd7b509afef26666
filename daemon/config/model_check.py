"""What needs the model: do the cameras' frames fit it, and which thresholds it runs with.

The daemon runs `check_model` at start, ``defectd check-config --model-check`` on demand;
the post-processing stage uses `effective_thresholds` alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from defectd.daemon.config.errors import ConfigError, Problems
from defectd.daemon.config.schema import DaemonConfig, ThresholdOverride
from defectd.engines.model_card import ModelCard, read_card
from defectd.engines.postprocess import PostprocessConfig
from defectd.engines.selection import check_model_fits


def effective_thresholds(
    card: ModelCard, overrides: Sequence[ThresholdOverride], source: str = "<config>"
) -> PostprocessConfig:
    """The card's tuned thresholds with `overrides` (``model.thresholds``) applied over them;
    `ConfigError` when an override names a class the model lacks, or one class twice."""
    problems = Problems()
    listing = ", ".join(f"{i} {name}" for i, name in enumerate(card.classes, start=1))
    classes = list(card.thresholds.classes)
    taken: dict[int, int | str] = {}
    for override in overrides:
        path, target = f"model.thresholds.{override.target}", override.target
        if isinstance(target, int):
            index = target - 1
        else:
            index = card.classes.index(target) if target in card.classes else -1
        if not 0 <= index < min(len(classes), len(card.classes)):
            close = difflib.get_close_matches(str(target), card.classes, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            message = f"model {card.name} has no class {target!r}; {hint}its classes are"
            problems.add(path, f"{message} {listing}")
        elif index in taken:
            message = f"class {index + 1} ({card.classes[index]}) is already set by"
            problems.add(path, f"{message} model.thresholds.{taken[index]}")
        else:
            taken[index] = target
            classes[index] = replace(classes[index], **override.changes())
    if problems.items:
        raise ConfigError(problems.formatted(source))
    return replace(card.thresholds, classes=tuple(classes))  # keeps the head (softmax or sigmoid)


@dataclass(frozen=True)
class ModelCheck:
    """The model a config runs, and the thresholds it runs it with."""

    card: ModelCard
    thresholds: PostprocessConfig


def check_model(config: DaemonConfig, verify: bool = True) -> ModelCheck:
    """Read ``model.dir``'s card, check the cameras' frames fit the model and apply the
    threshold overrides (`verify`: also each model file's sha256); `ConfigError` if not."""
    try:
        card = read_card(config.model.dir)
        if verify:
            card.verify()
    except ValueError as exc:
        raise ConfigError([f"{config.source}: model.dir: {exc}"]) from None
    problems = []
    try:
        check_model_fits(card, config.frame_format)
    except ValueError as exc:
        problems.append(f"{config.source}: cameras: {exc}")
    tile = card.input.shape
    overlap = config.batching.tile_overlap
    for height, width in config.frame_sizes:
        cut = [
            f"{name} {size} > {model}"
            for name, size, model in (("height", height, tile[0]), ("width", width, tile[1]))
            if size > model
        ]
        if cut and overlap >= min(tile):
            problems.append(
                f"{config.source}: batching.tile_overlap: {overlap} px is not less than the "
                f"model's {tile[1]}×{tile[0]} tile; frames {width}×{height} are cut into "
                f"tiles ({', '.join(cut)}): use a smaller overlap, e.g. 32"
            )
            break
    thresholds = card.thresholds
    try:
        thresholds = effective_thresholds(card, config.model.thresholds, config.source)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return ModelCheck(card, thresholds)
