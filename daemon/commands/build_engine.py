"""`defectd build-engine`: build and cache the TensorRT engine before deployment; on a machine
without one, measure which CPU engine is fastest for the model (`engines.cpu_choice`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from defectd.daemon.cli import CommandError

if TYPE_CHECKING:
    from defectd.engines.selection import TensorRTSettings

# --model mode's defaults; --config takes these from the config's engine: section.
DEFAULT_MAX_BATCH = 32
DEFAULT_OPT_BATCH = 8
DEFAULT_WORKSPACE_MB = 4096


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `build-engine` subcommand."""
    parser = subparsers.add_parser(
        "build-engine",
        help="build the TensorRT engine for a model on this GPU and cache it (needs defectd[gpu])",
        description=(
            "Build MODEL/model.fp16.onnx into a TensorRT engine for this GPU and TensorRT "
            "version and store it in the engine cache, so the daemon starts without a build. "
            "Does nothing when a valid cached engine exists (unless --force). Builds take "
            "minutes; progress is logged. Run it on the machine that will run the daemon. "
            "With --config FILE the model and every engine setting come from the daemon's "
            "config, and it exits 0 without building when engine.backend does not resolve to "
            "TensorRT on this machine (the systemd unit's ExecStartPre); when it resolves to "
            "backend auto on the CPU, or with --model DIR --cpu, it times the CPU engines the "
            "model may use (ONNX Runtime FP32; INT8 and OpenVINO where the model's INT8 file "
            "passed parity and OpenVINO is installed) and records the fastest in the cache, "
            "which engine.backend auto then runs."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="model directory")
    source.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=(
            "the daemon's config: build what `defectd run --config FILE` would open "
            "(model.dir, engine.max_batch, opt_batch, workspace_mb, cache_dir)"
        ),
    )
    parser.add_argument(
        "--max-batch", type=int, help=f"largest batch (default {DEFAULT_MAX_BATCH})"
    )
    parser.add_argument(
        "--opt-batch", type=int, help=f"batch size to tune for (default {DEFAULT_OPT_BATCH})"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="engine cache (default $DEFECTD_ENGINE_CACHE or ~/.cache/defectd/engines)",
    )
    parser.add_argument(
        "--workspace-mb",
        type=int,
        help=f"builder workspace limit (default {DEFAULT_WORKSPACE_MB})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU engines: threads to measure with, as engine.threads (default: all cores)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="with --model: time the CPU engines the model may use (ONNX Runtime FP32, INT8 "
        "and OpenVINO where they passed parity) and record the fastest for engine.backend auto",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build (or find) the engine and print its path and cache key."""
    from defectd.engines.backends.tensorrt_backend import engine_key, ensure_engine
    from defectd.engines.model_card import read_card
    from defectd.engines.selection import TensorRTSettings, default_cache_dir
    from defectd.engines.tensorrt_build import TensorRTError, import_cuda, import_tensorrt

    if args.cpu:
        if args.config is not None:
            raise CommandError(
                "--cpu with --config: the config's engine: section decides; the CPU engines "
                "are measured when it resolves to backend auto on the CPU"
            )
        return _cpu(
            args.model,
            args.threads,
            args.max_batch or CPU_MAX_BATCH,
            args.cache_dir or default_cache_dir(),
            args.force,
        )
    if args.config is not None:
        resolved = _from_config(args)
        if not isinstance(resolved, tuple):
            return resolved  # 0: nothing to build here; 2: the config cannot be used
        model, settings = resolved
    else:
        model = args.model
        settings = TensorRTSettings(
            max_batch=args.max_batch or DEFAULT_MAX_BATCH,
            opt_batch=args.opt_batch or DEFAULT_OPT_BATCH,
            cache_dir=args.cache_dir or default_cache_dir(),
            workspace_mb=args.workspace_mb or DEFAULT_WORKSPACE_MB,
        )
    try:
        import_tensorrt()  # the install hint before anything else
        import_cuda()
        card = read_card(model)
        card.verify()  # the key trusts the card's sha256 of the FP16 ONNX
        key = engine_key(card, settings.max_batch, settings.opt_batch, settings.workspace_mb)
        path, built = ensure_engine(
            card,
            settings.max_batch,
            settings.opt_batch,
            settings.cache_dir,
            settings.workspace_mb,
            force=args.force,
        )
    except TensorRTError as exc:
        raise CommandError(
            f"{exc}; on a machine without a GPU, `defectd build-engine --model {model} --cpu` "
            "measures the CPU engines for engine.backend auto instead"
        ) from exc
    state = "built engine" if built else "cached engine already valid"
    print(f"{state}: {path}\nkey {key.digest()[:16]}: {key.describe()}")
    return 0


def _from_config(args: argparse.Namespace) -> tuple[Path, TensorRTSettings] | int:
    """The model and build settings `args.config` gives; 0 when no TensorRT engine is wanted
    here (said on stdout), 2 when the config cannot be used (problems on stderr)."""
    from defectd.daemon.config import ConfigError, load_config
    from defectd.daemon.logs import stream_is_journal
    from defectd.engines.selection import (
        TensorRTSettings,
        choose_backend,
        default_cache_dir,
        detect_platform,
    )

    given = [
        flag
        for flag, value in (
            ("--threads", args.threads),
            ("--max-batch", args.max_batch),
            ("--opt-batch", args.opt_batch),
            ("--workspace-mb", args.workspace_mb),
            ("--cache-dir", args.cache_dir),
        )
        if value is not None
    ]
    if given:
        raise CommandError(
            f"{', '.join(given)} with --config: the config's engine: section sets these "
            "(max_batch, opt_batch, workspace_mb, cache_dir), so the daemon finds the engine"
        )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        prefix = "<3>" if stream_is_journal(sys.stderr) else ""  # errors in the journal
        for problem in exc.problems:
            print(prefix + problem, file=sys.stderr)
        return 2
    # RuntimeError/ValueError (tensorrt asked for but missing, say) fail like the daemon would.
    here = detect_platform()
    choice = choose_backend(config.engine, here)
    if choice.backend != "tensorrt":
        print(
            f"no TensorRT engine to build: {args.config} runs {choice.backend} on "
            f"{choice.device} here ({choice.reason})"
        )
        engine = config.engine
        if engine.backend == "auto" and choice.device == "cpu" and engine.precision is None:
            cache = Path(engine.cache_dir) if engine.cache_dir else default_cache_dir()
            return _cpu(
                config.model.dir, engine.threads, engine.max_batch, cache, args.force, here.openvino
            )
        return 0
    return config.model.dir, TensorRTSettings.of(config.engine)


CPU_MAX_BATCH = 16  # engine.max_batch's default: what the daemon opens unless told otherwise


def _cpu(
    model: Path,
    threads: int | None,
    batch: int,
    cache: Path,
    force: bool,
    openvino: bool | None = None,
) -> int:
    """Measure (or find) the fastest CPU engine for `model` and record it for ``auto``."""
    from defectd.engines.backends.openvino_backend import openvino_available
    from defectd.engines.cpu_choice import (
        candidates,
        measure_choice,
        read_choice,
        resolved_threads,
        write_choice,
    )
    from defectd.engines.model_card import read_card

    card = read_card(model)
    card.verify()
    count = resolved_threads(threads)
    openvino = openvino_available() if openvino is None else openvino
    usable, skipped = candidates(card, openvino)
    for name, why in skipped.items():
        print(f"not a candidate: {name}: {why}")
    if len(usable) < 2:
        print(f"CPU engine: {usable[0]}, the only one this model can use here: nothing to measure")
        return 0
    recorded = None if force else read_choice(cache, card, count, batch)
    if recorded is None:
        print(f"timing {', '.join(usable)} at batch {batch}, {count} threads …")
        recorded = measure_choice(card, count, batch, openvino)
        path = write_choice(cache, recorded)
        state = "recorded"
    else:
        path, state = cache, "already recorded"
    for name, fps in recorded.frames_per_s.items():
        print(f"  {name:<18} {fps:8.1f} frames/s")
    print(
        f"CPU engine {state}: {recorded.backend} {recorded.precision} is the fastest "
        f"({path}); engine.backend auto runs it with engine.max_batch {batch} and "
        f"engine.threads {count}"
    )
    return 0
