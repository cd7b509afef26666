"""`defectd train`: train DeepLabV3+ with the presence head on a Severstal-layout folder (or
several, mixed at given weights, or any other labelled data set)."""

from __future__ import annotations

import argparse
from pathlib import Path

from defectd.daemon.commands.score import parse_shape
from defectd.daemon.commands.torch_check import require_torch
from defectd.training.mixed import format_source, parse_source


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `train` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train the segmentation model (needs defectd[train])",
        description=(
            "Train DeepLabV3+ (masks + class presence) on a Severstal-layout folder "
            "(train.csv + train_images/, e.g. from `defectd synth`). Random crops for "
            "training, full frames for validation; the best epoch by validation Kaggle Dice "
            "is kept as OUT/best.pt. Interrupt at any time and continue with --resume."
        ),
    )
    parser.add_argument(
        "--data",
        type=_source,
        action="append",
        required=True,
        metavar="PATH[:WEIGHT]",
        help="Severstal-layout folder, or any labelled data set `defectd dataset check` reads "
        "(exclusive classes, e.g. label maps, train a softmax head). Repeat it to mix several "
        "folders, Severstal-layout only, e.g. --data data/synth --data real:0.25: each source "
        "gets WEIGHT / sum of the weights of the training crops (WEIGHT default 1, class "
        "balance within each source); validation comes from the first --data only",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        help="the data set's dataset.yaml when it cannot sit in the folder (read-only data): "
        "class names, mask kind (docs/datasets.md)",
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory, e.g. runs/NAME")
    parser.add_argument("--encoder", default="resnet18", help="resnet18|resnet34|resnet50")
    parser.add_argument(
        "--encoder-width", type=float, default=1.0, help="channel multiplier (0.25 = CPU model)"
    )
    parser.add_argument("--decoder-channels", type=int, default=256, help="ASPP/decoder width")
    parser.add_argument("--output-stride", type=int, default=16, choices=(8, 16))
    parser.add_argument(
        "--in-channels",
        type=int,
        default=1,
        choices=(1, 3),
        help="model input channels; 3 keeps an ImageNet RGB stem and repeats the grey frame",
    )
    parser.add_argument(
        "--encoder-weights", type=Path, help="torchvision ResNet ImageNet checkpoint (.pth)"
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        help="fine-tune: start from this checkpoint (a run directory or .pt); the model "
        "options and grey normalisation come from it",
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--steps-per-epoch", type=int, help="optimiser steps per epoch (default: one pass)"
    )
    parser.add_argument(
        "--crop", type=parse_shape, default=(256, 512), help="training crop HxW (default 256x512)"
    )
    parser.add_argument("--val-split", type=float, default=0.15)
    parser.add_argument(
        "--balance",
        type=float,
        default=0.75,
        help="class-balanced sampling: 0 samples as the data is, 1 gives every class an "
        "equal share (default 0.75)",
    )
    parser.add_argument(
        "--blackout",
        type=float,
        default=0.1,
        help="probability of painting bare strip over one defect class of a frame (default "
        "0.1; teaches clean frames where few exist, 0 for sets where every image has a defect)",
    )
    parser.add_argument(
        "--defect-crop",
        type=float,
        default=0.5,
        help="probability that a training crop is placed over a defect pixel (default 0.5)",
    )
    parser.add_argument(
        "--class-weights",
        default="auto",
        choices=("auto", "none"),
        help="auto: the loss weighs each class by sqrt(background / class pixels), capped, so "
        "small rare defects count; none: all classes weigh 1 (sets where every image has a "
        "defect, e.g. NEU-Seg)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16"),
        help="forward-pass precision: auto is FP16 on CUDA and FP32 on a CPU; bf16 about "
        "halves a CPU step where the CPU has bfloat16 instructions",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="data-loader processes")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last epoch"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _source(text: str) -> tuple[str, float]:
    """A --data value as (path, weight): ``PATH`` or ``PATH:WEIGHT`` (`parse_source`); the
    path written as `Path` writes it, as config.json has always had it."""
    try:
        path, weight = parse_source(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return str(Path(path)), weight


def run(args: argparse.Namespace) -> int:
    """Train and print where the results are; the run records `args.command_line`."""
    require_torch("train")
    from defectd.training.augment import AugmentConfig
    from defectd.training.model.model import ModelConfig
    from defectd.training.trainer import TrainConfig, Trainer

    (data, weight), *extra = args.data
    config = TrainConfig(
        data=data,
        data_weight=weight,
        extra_data=tuple(format_source(path, w) for path, w in extra),
        out=str(args.out),
        spec=None if args.spec is None else str(args.spec),
        model=ModelConfig(
            encoder=args.encoder,
            in_channels=args.in_channels,
            output_stride=args.output_stride,
            encoder_width=args.encoder_width,
            decoder_channels=args.decoder_channels,
        ),
        augment=AugmentConfig(crop=args.crop, blackout=args.blackout, defect_crop=args.defect_crop),
        epochs=args.epochs,
        batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch,
        val_split=args.val_split,
        lr=args.lr,
        seed=args.seed,
        workers=args.workers,
        device=args.device,
        encoder_weights=str(args.encoder_weights) if args.encoder_weights else None,
        balance=args.balance,
        init_from=str(args.init_from) if args.init_from else None,
        precision=args.precision,
        class_weights=args.class_weights,
    )
    trainer = Trainer(config, resume=args.resume, command=args.command_line)
    try:
        history = trainer.run(progress=not args.no_progress)
    except KeyboardInterrupt:
        again = args.command_line if args.resume else f"{args.command_line} --resume"
        print(f"interrupted; continue with: {again}")
        raise
    if history:
        best = max(history, key=lambda row: row.score)
        miou = "" if best.val_miou is None else f"validation mIoU {best.val_miou:.4f}, "
        print(
            f"best epoch {best.epoch}: {miou}validation Kaggle Dice {best.val_dice:.4f}; "
            f"checkpoint {args.out}/best.pt, curves {args.out}/curves.png"
        )
    return 0
