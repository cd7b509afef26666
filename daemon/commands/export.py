"""`defectd export`: a training checkpoint → model directory (FP32 + FP16 ONNX, model card)."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.commands.torch_check import require_torch


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `export` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX (FP32 + FP16) with a model card (needs defectd[train])",
        description=(
            "Write OUT/model.onnx (FP32), OUT/model.fp16.onnx (FP16 weights and compute, for "
            "TensorRT) and OUT/model_card.json. Both take uint8 N×1×256×1600 frames with the "
            "normalisation inside the graph. Export checks ONNX Runtime against torch and "
            "FP16 against FP32 before writing the card. Run `defectd tune` next."
        ),
    )
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="run directory (uses best.pt) or a .pt"
    )
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--name", default="defectd-deeplabv3plus", help="model name for the card")
    parser.add_argument("--version", default="0.1.0", help="model version for the card")
    parser.add_argument("--force", action="store_true", help="replace an existing model in --out")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export and print the parity figures."""
    require_torch("export")
    from defectd.training.export import export_model

    card = export_model(
        args.checkpoint, args.out, args.name, args.version, args.command_line, overwrite=args.force
    )
    onnx, fp16 = card.parity["onnx_fp32_vs_torch"], card.parity["onnx_fp16_vs_fp32"]
    print(
        f"wrote {args.out}/{card.files['fp32'].path}, {card.files['fp16'].path} and "
        f"model_card.json\nparity on {onnx['frames']} frames: ONNX FP32 vs torch "
        f"max |Δp| {onnx['max_abs_diff_probs']:.2e}; FP16 vs FP32 max |Δp| "
        f"{fp16['max_abs_diff_probs']:.2e}, masks agree on {100 * fp16['mask_agreement']:.3f}% "
        f"of pixels\nnext: defectd tune --model {args.out} --data VALIDATION_DIR"
    )
    return 0
