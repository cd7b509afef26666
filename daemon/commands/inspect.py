"""`defectd inspect`: a picture of what the model finds on given frames."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.commands.model_options import add_model_arguments, open_model
from defectd.engines.overlay import inspection_panel, write_panels
from defectd.engines.severstal import read_any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `inspect` subcommand."""
    parser = subparsers.add_parser(
        "inspect",
        help="draw the defects the model finds on frames (overlay PNG with a legend)",
        description=(
            "Run the model on one or more frames and write one picture: each frame with its "
            "defects filled and outlined by class colour, and a legend with class, area and "
            "scores. Also prints the defects found."
        ),
    )
    add_model_arguments(parser)
    parser.add_argument(
        "images",
        nargs="+",
        type=Path,
        metavar="IMAGE",
        help="frame files, any size (frames other than the model's input are tiled)",
    )
    parser.add_argument("--out", type=Path, required=True, help="picture to write (.png)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Infer, draw, print."""
    card, predictor = open_model(args)
    panels = []
    for path in args.images:
        image = read_any(path)
        defects = next(iter(predictor.run_images([(path.name, image)]))).defects
        panels.append(inspection_panel(image, defects, path.name, card.classes))
        found = ", ".join(
            f"class {c.class_id} {c.area} px at x={c.bbox[0]} y={c.bbox[1]} (p {c.score:.2f})"
            for c in defects.components
        )
        print(f"{path}: {found or 'no defects'}")
    write_panels(panels, args.out)
    print(f"wrote {args.out}")
    return 0
