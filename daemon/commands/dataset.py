"""`defectd dataset ACTION`: labelled data sets in the layouts lines bring (docs/datasets.md).

``dataset check DIR`` detects the format, reads every image and mask once and prints the
classes, sizes, defect-free count, notices and every problem; it exits 2 when there is any.
``dataset folds DIR --folds K --out OUT`` writes K cross-validation folders of a small
Severstal-layout set (links, no copies; `engines.datasets.folds`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.commands.output import add_json_option, emit_json, to_stdout
from defectd.engines.datasets import Dataset, DatasetReport, check, open_dataset
from defectd.engines.errors import InvalidInput

SHOWN = 20  # problems and notices listed unless --all
SIZES_SHOWN = 8
PROGRESS_FROM = 200  # images; smaller sets are read before a bar would be worth drawing
MASK_KINDS = {
    "label_map": "label maps (pixel value = class, 0 background)",
    "binary": "binary, one class per mask (values > 127 = the class)",
    "rle": "run-length rows (Kaggle Severstal CSV)",
}


class DatasetProblems(InvalidInput):
    """The data set has problems; the report above the error lists them all."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `dataset` and its actions (`check`)."""
    parser = subparsers.add_parser(
        "dataset",
        help="labelled data sets: detect the format, check every file",
        description="Labelled data sets in any known layout: severstal, image-mask-folders, "
        "side-by-side, class-folders (docs/datasets.md). `defectd dataset ACTION --help`.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    checker = actions.add_parser(
        "check",
        usage="defectd dataset check [-h] [--spec FILE] [--all] [--no-progress] [--json FILE] DIR",
        help="read every image and mask once; print counts and every problem (exit 2 if any)",
        description="Detect DIR's format, read every image and mask once, and report the "
        "classes (images holding each, pixel share), image sizes, defect-free images, "
        "duplicates and every problem as `file: problem`. Exits 2 when there are problems.",
    )
    checker.add_argument("dir", type=Path, metavar="DIR", help="the data set folder")
    checker.add_argument(
        "--spec",
        type=Path,
        metavar="FILE",
        help="a dataset.yaml to use in place of DIR/dataset.yaml (for a folder you cannot write)",
    )
    checker.add_argument(
        "--all", action="store_true", help=f"list every problem and notice (default: {SHOWN})"
    )
    checker.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_json_option(checker, "the report")
    checker.set_defaults(handler=run_check)
    folds = actions.add_parser(
        "folds",
        help="K cross-validation folders of a small Severstal-layout set (links, no copies)",
        description="Deal the frames of a Severstal-layout folder into K parts (each class "
        "combination spread over them) and write OUT/fold-K/train and OUT/fold-K/test as "
        "Severstal-layout folders of symbolic links, plus OUT/folds.json. Train on "
        "fold-K/train, score on fold-K/test: no frame ever scores a model it trained.",
    )
    folds.add_argument("dir", type=Path, metavar="DIR", help="Severstal-layout folder")
    folds.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    folds.add_argument("--seed", type=int, default=0)
    folds.add_argument("--out", type=Path, required=True, help="folder to create")
    folds.set_defaults(handler=run_folds)


def _percent(share: float) -> str:
    return f"{100 * share:.3f}%" if share < 0.001 else f"{100 * share:.2f}%"


def _sizes(report: DatasetReport) -> str:
    ranked = sorted(report.sizes.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{w}×{h}: {n}" for (h, w), n in ranked[:SIZES_SHOWN])
    if len(ranked) <= SIZES_SHOWN:
        return f"sizes (W×H): {text or 'none read'}"
    heights = [h for h, _ in report.sizes]
    widths = [w for _, w in report.sizes]
    return (
        f"sizes (W×H): {len(ranked)} different, widths {min(widths)}–{max(widths)}, heights "
        f"{min(heights)}–{max(heights)}; most common {text}, …"
    )


def _listing(title: str, lines: list[str], show_all: bool) -> list[str]:
    if not lines:
        return [f"{title}: none"]
    shown = lines if show_all else lines[:SHOWN]
    out = [f"{title} ({len(lines)}):", *(f"  {line}" for line in shown)]
    if len(shown) < len(lines):
        out.append(f"  … and {len(lines) - len(shown)} more (--all lists them; --json FILE too)")
    return out


def format_report(report: DatasetReport, show_all: bool = False) -> str:
    """The report as text: format, class table, sizes, notices and problems."""
    exclusive = (
        "classes exclude each other per pixel" if report.exclusive else "classes may overlap"
    )
    width = max([len(c.name) for c in report.classes] + [4])
    lines = [
        f"data set: {report.root}",
        f"format:   {report.format} (spec: {report.spec_source})",
        f"masks:    {MASK_KINDS.get(report.mask_kind, report.mask_kind)}; {exclusive}",
        f"images:   {report.images}, defect-free {report.defect_free}; read in "
        f"{report.seconds:.1f} s",
        "",
        f"class  {'name':<{width}}  images  pixel share",
        *(
            f"{c.id:5d}  {c.name:<{width}}  {c.images:6d}  {_percent(c.pixel_share):>11}"
            for c in report.classes
        ),
        "",
        _sizes(report),
        *_listing("notices", report.notices, show_all),
        *_listing("problems", report.problems, show_all),
    ]
    return "\n".join(lines)


def _checked(dataset: Dataset, show_progress: bool) -> DatasetReport:
    """`check`, with a tqdm bar on stderr for large sets."""
    if not show_progress or len(dataset) < PROGRESS_FROM:
        return check(dataset)
    from tqdm import tqdm  # only when drawing; keeps `defectd --help` light

    with tqdm(total=len(dataset), unit="image", desc="check", leave=False) as bar:
        return check(dataset, lambda done, _total: bar.update(done - bar.n))


def run_check(args: argparse.Namespace) -> int:
    """Check the data set; print the report; exit 0, or raise `DatasetProblems` (exit 2)."""
    dataset = open_dataset(args.dir, args.spec)
    report = _checked(dataset, not args.no_progress)
    if not to_stdout(args):
        print(format_report(report, args.all))
    emit_json(args, report.to_dict())
    if report.problems:
        raise DatasetProblems(
            f"{len(report.problems)} problem(s) in {report.root}, the first: {report.problems[0]}"
        )
    return 0


def run_folds(args: argparse.Namespace) -> int:
    """Write the folds; print one line per fold."""
    from defectd.engines.datasets.folds import write_folds

    for fold in write_folds(args.dir, args.folds, args.seed, args.out):
        print(
            f"{args.out}/fold-{fold.number}: train {len(fold.train)} frames, "
            f"test {len(fold.test)}: {', '.join(fold.test)}"
        )
    return 0
