"""`defectd golden check | write`: a model's stored golden outputs, checked or (re)written.

A model directory holds ``golden.npz`` (a few fixed frames) and ``golden.json`` (what the
model gave on them; see `engines.golden`). ``check`` runs the frames through an engine and
exits 2 naming the mismatches when it does not reproduce them; ``write`` stores them anew
with ONNX Runtime FP32 on the CPU, the reference — after `defectd tune`, say.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.engines.golden import (
    GOLDEN_FRAMES,
    read_golden,
    stored_frames,
    write_golden,
)
from defectd.engines.golden_check import GoldenMismatch, check_golden
from defectd.engines.model_card import default_model_dir, read_card
from defectd.engines.selection import CHOICES, EngineConfig, open_engine


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `golden` with its `check` and `write` subcommands."""
    parser = subparsers.add_parser(
        "golden",
        help="check a model against its stored golden outputs, or write them",
        description=(
            "A model directory ships golden outputs: golden.npz (a few fixed frames) and "
            "golden.json (per frame the presence and peak scores and the post-processed "
            "defects). `check` catches a changed export, backend or post-processing; `write` "
            "stores them anew. `defectd golden ACTION --help` for an action's options."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    check = actions.add_parser(
        "check",
        help="run the golden frames through an engine and compare (exit 2 on a mismatch)",
        description=(
            "Run the model's golden frames through the chosen engine at the card's "
            "thresholds. Presence and peak must agree within 1e-3 (FP32) or 1e-2 (FP16), "
            "every frame must flag the same classes, and each defect mask must have Dice ≥ "
            "0.99 and an area within 1%. Prints the report; exits 2 when it fails."
        ),
    )
    _add_model(check, required=False)
    check.add_argument(
        "--backend",
        default="onnxruntime",
        choices=CHOICES,
        help="engine backend (default onnxruntime: the reference; auto: what the daemon picks)",
    )
    check.add_argument(
        "--precision",
        choices=("fp32", "fp16"),
        help="fp32 or fp16 (default: fp16 on a GPU, fp32 on the CPU)",
    )
    _add_threads(check)
    check.set_defaults(handler=run_check)

    write = actions.add_parser(
        "write",
        help="(re)write the golden outputs with ONNX Runtime FP32 on the CPU",
        description=(
            "Run fixed synthetic frames (every class and a clean frame; the frames already "
            "stored when there are some) through ONNX Runtime FP32 on the CPU at the card's "
            "thresholds and write golden.npz and golden.json into the model directory. Do "
            "it after `defectd tune` changes the thresholds."
        ),
    )
    _add_model(write, required=True)
    write.add_argument(
        "--new-frames",
        action="store_true",
        help="pick the frames from the synthetic line again instead of keeping the stored ones",
    )
    _add_threads(write)
    write.set_defaults(handler=run_write)


def _add_model(parser: argparse.ArgumentParser, required: bool) -> None:
    default = "" if required else " (default: the bundled models/default, or $DEFECTD_MODEL)"
    parser.add_argument(
        "--model",
        type=Path,
        required=required,
        metavar="DIR",
        help=f"model directory with model_card.json{default}",
    )


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")


def run_check(args: argparse.Namespace) -> int:
    """Check, print the report; GoldenMismatch (exit 2) naming the first failures."""
    model_dir = Path(args.model or default_model_dir())
    card = read_card(model_dir)
    config = EngineConfig(
        backend=args.backend, precision=args.precision, threads=args.threads, warmup=False
    )
    with open_engine(card, config) as engine:  # verifies the card's sha256 first
        report = check_golden(engine, model_dir)
    print("\n".join(report.lines()))
    if not report.ok:
        raise GoldenMismatch(report)
    return 0


def run_write(args: argparse.Namespace) -> int:
    """Write both golden files and print what they hold."""
    model_dir = Path(args.model)
    card = read_card(model_dir)
    frames, source = (None, None) if args.new_frames else stored_frames(model_dir)
    config = EngineConfig(
        backend="onnxruntime", precision="fp32", device="cpu", threads=args.threads, warmup=False
    )
    with open_engine(card, config) as engine:
        path = write_golden(model_dir, frames, engine=engine, source=source)
    golden = read_golden(model_dir)
    size = (model_dir / GOLDEN_FRAMES).stat().st_size
    print(
        f"wrote {model_dir / GOLDEN_FRAMES} ({len(golden.frames)} frames, "
        f"{size / 1e6:.2f} MB) and {path} ({engine.info.describe()})"
    )
    for index, frame in enumerate(golden.expected):
        found = ", ".join(f"class {d.class_id} {d.area} px" for d in frame.defects)
        print(f"  frame {index}: {found or 'clean'}")
    print(f"check another backend with: defectd golden check --model {model_dir} --backend auto")
    return 0
