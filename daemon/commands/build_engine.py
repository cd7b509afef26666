"""`defectd build-engine`: build and cache the TensorRT engine before deployment."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.cli import CommandError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `build-engine` subcommand."""
    parser = subparsers.add_parser(
        "build-engine",
        help="build the TensorRT engine for a model on this GPU and cache it (needs defectd[gpu])",
        description=(
            "Build MODEL/model.fp16.onnx into a TensorRT engine for this GPU and TensorRT "
            "version and store it in the engine cache, so the daemon starts without a build. "
            "Does nothing when a valid cached engine exists (unless --force). Builds take "
            "minutes; progress is logged. Run it on the machine that will run the daemon."
        ),
    )
    parser.add_argument("--model", type=Path, required=True, help="model directory")
    parser.add_argument("--max-batch", type=int, default=32, help="largest batch (default 32)")
    parser.add_argument(
        "--opt-batch", type=int, default=8, help="batch size to tune for (default 8)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="engine cache (default $DEFECTD_ENGINE_CACHE or ~/.cache/defectd/engines)",
    )
    parser.add_argument(
        "--workspace-mb", type=int, default=4096, help="builder workspace limit (default 4096)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build (or find) the engine and print its path and cache key."""
    from engines.backends.tensorrt_backend import engine_key, ensure_engine
    from engines.model_card import read_card
    from engines.selection import default_cache_dir
    from engines.tensorrt_build import TensorRTError, import_cuda, import_tensorrt

    try:
        import_tensorrt()  # the install hint before anything else
        import_cuda()
        card = read_card(args.model)
        card.verify()  # the key trusts the card's sha256 of the FP16 ONNX
        cache_dir = args.cache_dir or default_cache_dir()
        key = engine_key(card, args.max_batch, args.opt_batch, args.workspace_mb)
        path, built = ensure_engine(
            card, args.max_batch, args.opt_batch, cache_dir, args.workspace_mb, force=args.force
        )
    except TensorRTError as exc:
        raise CommandError(str(exc)) from exc
    state = "built engine" if built else "cached engine already valid"
    print(f"{state}: {path}\nkey {key.digest()[:16]}: {key.describe()}")
    return 0
