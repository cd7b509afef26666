"""`defectd synth`: write a synthetic Severstal-layout dataset and/or a contact sheet."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.cli import CommandError
from defectd.daemon.commands.output import refuse_unused
from defectd.engines.synth import SynthConfig, SyntheticLine, write_contact_sheet, write_dataset
from defectd.engines.synth.report import measure_line


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `synth` subcommand."""
    parser = subparsers.add_parser(
        "synth",
        help="generate labelled synthetic steel frames (Severstal layout) or a preview sheet",
        description=(
            "Generate synthetic 1600×256 steel frames with Severstal-like labels: "
            "OUT/train_images/*.jpg and OUT/train.csv. Deterministic by --seed."
        ),
    )
    parser.add_argument("--out", type=Path, help="dataset directory (empty, or use --force)")
    parser.add_argument("--count", type=int, help="frames to write (required with --out)")
    parser.add_argument("--seed", type=int, default=0, help="line seed (default 0)")
    parser.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality 1-100")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace train.csv and train_images/*.jpg in a non-empty --out",
    )
    parser.add_argument(
        "--class-share",
        type=_class_share,
        metavar="C=S",
        help="frames containing class C make share S of the set, e.g. 2=0.2 for a training "
        "set rich in the rare class 2 (default: the real mix, 2%% of frames)",
    )
    parser.add_argument("--preview", type=Path, help="also write a contact-sheet PNG here")
    parser.add_argument(
        "--preview-count", type=int, default=8, help="frames on the contact sheet (default 8)"
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="measure --count frames against the real Severstal statistics and print them",
    )
    parser.set_defaults(handler=run)


def _class_share(text: str) -> tuple[int, float]:
    """Parse `C=S` (class id, share of frames)."""
    try:
        class_id, share = text.split("=")
        return int(class_id), float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--class-share {text!r}: write CLASS=SHARE, e.g. 2=0.2"
        ) from None


def run(args: argparse.Namespace) -> int:
    """Write the dataset and/or the preview, then print a one-paragraph summary."""
    if args.out is None and args.preview is None and not args.stats:
        raise CommandError(
            "nothing to do: give --out DIR --count N, --preview FILE.png, or --stats --count N"
        )
    if (args.out is not None or args.stats) and args.count is None:
        raise CommandError("--out and --stats need --count N (how many frames)")
    if args.count is not None and args.count < 1:
        raise CommandError(f"--count must be at least 1, got {args.count}")
    if args.seed < 0:
        raise CommandError(f"--seed must be non-negative, got {args.seed}")
    if args.preview_count < 1:
        raise CommandError(f"--preview-count must be at least 1, got {args.preview_count}")
    if args.preview is not None and args.preview.suffix.lower() != ".png":
        raise CommandError(f"--preview {args.preview} must end in .png")
    refuse_unused(
        ("--preview-count", args.preview_count != 8, args.preview is not None, "without --preview"),
        ("--jpeg-quality", args.jpeg_quality != 95, args.out is not None, "without --out"),
        ("--force", args.force, args.out is not None, "without --out"),
    )

    config = SynthConfig(class_share=args.class_share)
    SyntheticLine(args.seed, config)  # checks the share before any file is touched
    lines = []
    preview_count = args.preview_count
    if args.out is not None:
        from tqdm import tqdm  # only needed when writing; keeps `defectd --help` light

        bars: list[tqdm[None]] = []  # opened on the first frame, after the directory checks

        def progress(done: int) -> None:
            if not bars:
                bars.append(tqdm(total=args.count, unit="frame", desc="synth", leave=False))
            bars[0].update(done - bars[0].n)

        try:
            summary = write_dataset(
                args.out,
                args.count,
                args.seed,
                config,
                jpeg_quality=args.jpeg_quality,
                progress=progress,
                overwrite=args.force,
            )
        finally:
            for bar in bars:
                bar.close()
        lines.append(summary.describe())
        preview_count = min(preview_count, args.count)  # only frames that were written
    if args.preview is not None:
        # Frames are deterministic by (seed, index): these are the written frames 0..n-1.
        frames = list(SyntheticLine(args.seed, config).frames(preview_count))
        write_contact_sheet(args.preview, frames)
        lines.append(
            f"Contact sheet of frames 0-{preview_count - 1} (seed {args.seed}): {args.preview}."
        )
    if args.stats:
        from tqdm import tqdm

        with tqdm(total=args.count, unit="frame", desc="measure", leave=False) as bar:
            statistics = measure_line(
                SyntheticLine(args.seed, config), args.count, lambda done: bar.update(done - bar.n)
            )
        lines.append("\n" + statistics.describe())
    print(" ".join(lines).strip())
    return 0
