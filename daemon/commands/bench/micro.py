"""The quick suites, one table each: rle, synth, model, postprocess, and micro (all four)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from defectd.daemon.commands.bench.record import add_common, positive, report
from defectd.engines.benchmarks import BenchResult, format_table

SUITES = ("micro", "rle", "synth", "model", "postprocess")
_MICRO = ("rle", "synth", "model", "postprocess")
_DESCRIPTIONS = {
    "micro": "the four quick suites (rle, synth, model, postprocess) in one table",
    "rle": "Kaggle RLE encode and decode on synthetic (and optionally real) masks",
    "synth": "the synthetic line: one frame, and one frame with its JPEG encode",
    "model": "the bundled (or given) model: FP32 and FP16 ONNX at batch 1 and 4",
    "postprocess": "post-processing of the model's outputs (thresholds, components, RLE)",
}


def register(suites: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the quick suites."""
    for name in SUITES:
        parser = suites.add_parser(name, help=_DESCRIPTIONS[name], description=_DESCRIPTIONS[name])
        parts = _MICRO if name == "micro" else (name,)
        if {"rle", "synth"} & set(parts):
            parser.add_argument(
                "--repeats", type=int, default=300, help="timed calls per case (default 300)"
            )
        if "rle" in parts:
            parser.add_argument(
                "--labels", type=Path, help="a Severstal train.csv whose real masks become cases"
            )
        if {"model", "postprocess"} & set(parts):
            parser.add_argument(
                "--model", type=Path, help="model directory (default: the bundled model)"
            )
            option = "--model-repeats" if name == "micro" else "--repeats"
            parser.add_argument(
                option,
                dest="model_repeats",
                type=int,
                default=20,
                help="timed engine calls per model case (default 20)",
            )
            parser.add_argument(
                "--threads", type=int, default=2, help="ONNX Runtime CPU threads (default 2)"
            )
        add_common(parser)
        parser.set_defaults(handler=run, parts=parts)


def run(args: argparse.Namespace) -> int:
    """Run the suite's parts and print one markdown table."""
    results: list[BenchResult] = []
    for part in args.parts:
        results += _run_part(part, args)
    report(args, [format_table(results)], {"results": [asdict(r) for r in results]})
    return 0


def _run_part(part: str, args: argparse.Namespace) -> list[BenchResult]:
    if part in ("rle", "synth"):
        positive("--repeats", args.repeats)
    if part == "rle":
        from defectd.engines.benchmarks import rle

        return rle.run(args.repeats, args.labels)
    if part == "synth":
        from defectd.engines.benchmarks import synth

        return synth.run(args.repeats)
    from defectd.engines.model_card import default_model_dir

    positive("--threads", args.threads)
    positive("--repeats", args.model_repeats)
    model_dir = args.model or default_model_dir()
    if part == "model":
        from defectd.engines.benchmarks import model

        return model.run(model_dir, args.model_repeats, args.threads)
    from defectd.engines.benchmarks import postprocess

    return postprocess.run(model_dir, args.model_repeats, args.threads)
