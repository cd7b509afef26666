"""`defectd bench`: micro-benchmarks that print (and optionally record) their numbers."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
from dataclasses import asdict
from pathlib import Path

from engines.benchmarks import BenchResult, format_table, machine_summary

SUITES = ("rle", "synth", "model")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `bench` subcommand."""
    parser = subparsers.add_parser(
        "bench",
        help="micro-benchmarks (RLE, synthetic line, model on ONNX Runtime); markdown table",
        description="Run micro-benchmarks. Medians of many repeats; compare within one run.",
    )
    parser.add_argument(
        "suites",
        nargs="*",
        default=list(SUITES),
        metavar="SUITE",
        help=f"which to run: {', '.join(SUITES)} (default all)",
    )
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per case")
    parser.add_argument(
        "--labels", type=Path, help="a Severstal train.csv whose real masks become extra RLE cases"
    )
    parser.add_argument(
        "--model", type=Path, help="model directory for the model suite (default: bundled)"
    )
    parser.add_argument(
        "--model-repeats", type=int, default=20, help="timed engine calls per model case"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="ONNX Runtime threads for the model suite"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen suites and print a markdown block for docs/benchmarks.md."""
    if args.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        raise ValueError(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    results: list[BenchResult] = []
    for suite in args.suites:
        if suite == "rle":
            from engines.benchmarks import rle

            results += rle.run(args.repeats, args.labels)
        elif suite == "synth":
            from engines.benchmarks import synth

            results += synth.run(args.repeats)
        elif suite == "model":
            from engines.benchmarks import model
            from engines.model_card import default_model_dir

            model_dir = args.model or default_model_dir()
            results += model.run(model_dir, args.model_repeats, args.threads)
    words = ["defectd", "bench", *args.suites, "--repeats", str(args.repeats)]
    if args.labels:
        words += ["--labels", str(args.labels)]
    if "model" in args.suites:
        words += ["--model-repeats", str(args.model_repeats), "--threads", str(args.threads)]
        if args.model:
            words += ["--model", str(args.model)]
    command = " ".join(shlex.quote(word) for word in words)
    header = (
        f"Machine: {machine_summary()}  \n"
        f"Date: {dt.date.today().isoformat()}  \n"
        f"Command: `{command}`\n"
    )
    print(header)
    print(format_table(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine_summary(),
                    "command": command,
                    "results": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    return 0
