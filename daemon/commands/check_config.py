"""`defectd check-config`: validate the daemon's YAML config and print the effective one."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

import yaml

from defectd.daemon.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    DaemonConfig,
    ModelCheck,
    check_model,
    config_warnings,
    load_config,
)
from defectd.engines.tiler import plan_tiles


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `check-config` subcommand."""
    parser = subparsers.add_parser(
        "check-config",
        help="check the daemon's config file and print the effective config",
        description=(
            "Read FILE as the daemon would at start. When it is valid, print the effective "
            "config (every key, defaults filled in) as YAML and exit 0; otherwise print one "
            "'FILE: key: problem' line per problem to stderr and exit 2. Keys and defaults: "
            "docs/configuration.md."
        ),
    )
    parser.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        metavar="FILE",
        help=f"the config file (default: {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument(
        "--model-check",
        action="store_true",
        help=(
            "also read model.dir's model card, verify the model files' sha256, check the "
            "cameras' frame size fits the model and apply model.thresholds"
        ),
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the effective config, or the problems; 0 when valid, 2 when not."""
    try:
        config = load_config(args.file)
        model = check_model(config) if args.model_check else None
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    for warning in config_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(render(config, model))
    return 0


def render(config: DaemonConfig, model: ModelCheck | None = None) -> str:
    """The effective config as YAML under a comment naming its file (and the model check)."""
    lines = [
        f"# Effective configuration from {config.source}, defaults filled in",
        "# (defectd check-config; every key is described in docs/configuration.md)",
    ]
    if model is not None:
        card = model.card
        lines.append(
            f"# model {card.name} {card.version} takes {card.input.width}×{card.input.height} "
            "frames; the cameras' frames:"
        )
        groups = {(group.height, group.width): group for group in config.slot_groups}
        for height, width in config.frame_sizes:
            grid = plan_tiles((height, width), card.input.shape, config.batching.tile_overlap)
            how = "as they are" if grid.whole else f"cut into {len(grid)} tiles"
            group = groups[(height, width)]
            lines.append(
                f"#   {width}×{height}: {how}; {group.count} slots "
                f"({group.count * height * width / 2**20:.1f} MiB of shared memory)"
            )
        lines.append("# thresholds in effect (model card, then model.thresholds):")
        for class_id, (name, thresholds) in enumerate(
            zip(card.classes, model.thresholds.classes, strict=True), start=1
        ):
            values = ", ".join(
                f"{f.name} {getattr(thresholds, f.name):g}" for f in fields(thresholds)
            )
            lines.append(f"#   {class_id} {name}: {values}")
    text = yaml.safe_dump(
        config.to_mapping(), sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return "\n".join(lines) + "\n" + text
