"""A model swap in the inference process: the candidate is opened, warmed and checked against
its golden outputs in a thread while the running engine keeps serving; the inference loop
switches to it between two batches (`daemon.stages.inference`).

What keeps the old engine serving, each with the reason in the log and in
``defectd_model_swaps_total{outcome="failed"}`` (and ``defectd_model_swap_failed`` 1 until a
swap succeeds): the card or a file's sha256 is wrong, the candidate's classes differ from the
running model's (events' class ids would change meaning: that needs a restart), the GPU
lacks the memory for a second engine, the engine does not open or warm up, or it does not
reproduce the model's golden outputs (`engines.golden_check`).

GPU memory: both engines are resident from the candidate's warm-up to the switch. Before
opening a CUDA candidate the loader asks the device how much is free and refuses the swap
when that is less than `GPU_HEADROOM` times what the running engine holds (its measured
footprint stands in for the candidate's, which is right for the usual swap: the same
architecture retrained). The old engine is closed right after the switch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from defectd.daemon.config import ConfigError, DaemonConfig, check_model
from defectd.engines.engine import Engine
from defectd.engines.golden import GoldenError
from defectd.engines.golden_check import check_golden
from defectd.engines.model_card import ModelCard
from defectd.engines.postprocess import PostprocessConfig
from defectd.engines.selection import open_engine

log = logging.getLogger(__name__)

GPU_HEADROOM = 1.2  # free GPU memory needed, as a multiple of the running engine's footprint


class SwapError(Exception):
    """Why a candidate model cannot take over; the running one keeps serving."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # a metric label: card, classes, memory, open, golden


@dataclass(frozen=True)
class ServingModel:
    """An open engine with the model it runs and the thresholds it runs it with."""

    engine: Engine
    card: ModelCard
    thresholds: PostprocessConfig
    config: DaemonConfig  # the config it was opened for (its model.dir and engine)
    golden: str = ""  # the golden check's line, when one ran

    @property
    def label(self) -> str:
        """``name version``, as events carry it."""
        return f"{self.card.name} {self.card.version}"

    def same_engine(self, config: DaemonConfig) -> bool:
        """Whether `config` runs this engine (same model directory and engine settings)."""
        return (config.model.dir, config.engine) == (self.config.model.dir, self.config.engine)


def open_model(
    config: DaemonConfig,
    *,
    classes: tuple[str, ...] | None = None,
    golden: bool = True,
    footprint: Callable[[], int | None] | None = None,
) -> ServingModel:
    """Open `config`'s model for serving; `SwapError` says why not.

    `classes`: the running model's, which the candidate must have. `golden`: check the
    model's golden outputs. `footprint`: the running engine's GPU bytes (None: not on a GPU).
    """
    try:
        model = check_model(config, verify=True)
    except ConfigError as exc:
        raise SwapError("card", str(exc)) from None
    card = model.card
    if classes is not None and tuple(card.classes) != classes:
        raise SwapError(
            "classes",
            f"model.dir: {config.model.dir} has classes {', '.join(card.classes)}; the running "
            f"model has {', '.join(classes)}: a model with other classes needs a restart",
        )
    used = footprint() if footprint is not None else None
    if used:
        _check_gpu_memory(used)
    try:
        engine = open_engine(config.model.dir, config.engine, config.frame_format)
    except Exception as exc:  # any backend's failure to open or warm up
        raise SwapError("open", f"the engine for {config.model.dir} did not open: {exc}") from None
    line = ""
    if golden:
        try:
            report = check_golden(engine, config.model.dir)
        except (GoldenError, OSError, ValueError) as exc:
            engine.close()
            raise SwapError("golden", f"golden check of {config.model.dir}: {exc}") from None
        except BaseException:
            engine.close()
            raise
        if not report.ok:
            engine.close()
            raise SwapError("golden", report.summary())
        line = report.describe()
    return ServingModel(engine, card, model.thresholds, config, line)


def torch_cuda_footprint() -> int | None:
    """GPU bytes this process's torch holds (the running engine), None without CUDA."""
    from defectd.engines.backends.torch_backend import cuda_memory

    memory = cuda_memory()
    return None if memory is None else memory[0]


def gpu_free_bytes() -> int | None:
    """Free bytes on the current CUDA device, None where it cannot be asked."""
    from defectd.engines.backends.torch_backend import cuda_memory

    memory = cuda_memory()
    return None if memory is None else memory[1]


def memory_verdict(footprint: int, free: int | None) -> str | None:
    """Why a second engine does not fit (None: it fits, or the free memory is unknown)."""
    if free is None or free >= GPU_HEADROOM * footprint:
        return None
    return (
        f"the GPU has {free / 2**20:.0f} MiB free, a second engine needs about "
        f"{GPU_HEADROOM * footprint / 2**20:.0f} MiB ({GPU_HEADROOM:g}× the running engine's "
        f"{footprint / 2**20:.0f} MiB): swap at a restart, or free the GPU first"
    )


def _check_gpu_memory(footprint: int) -> None:
    verdict = memory_verdict(footprint, gpu_free_bytes())
    if verdict is not None:
        raise SwapError("memory", verdict)


@dataclass(frozen=True)
class Loaded:
    """A finished load: the candidate, or why it failed."""

    generation: int
    config: DaemonConfig
    model: ServingModel | None
    error: SwapError | None
    seconds: float


class ModelLoader:
    """Opens one candidate at a time in a background thread (`start`, then `poll`)."""

    def __init__(self, opener: Callable[[DaemonConfig], ServingModel]) -> None:
        self._opener = opener
        self._thread: threading.Thread | None = None
        self._done: Loaded | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(self, config: DaemonConfig, generation: int) -> None:
        if self._thread is not None:
            raise RuntimeError("a model is being loaded already")
        started = time.monotonic()

        def load() -> None:
            try:
                model, error = self._opener(config), None
            except SwapError as exc:
                model, error = None, exc
            except Exception as exc:  # the running engine must survive any candidate
                log.exception("loading %s failed", config.model.dir)
                model, error = None, SwapError("open", f"{type(exc).__name__}: {exc}")
            self._done = Loaded(generation, config, model, error, time.monotonic() - started)

        self._thread = threading.Thread(target=load, name="defectd-model-loader", daemon=True)
        self._thread.start()

    def poll(self) -> Loaded | None:
        """The finished load, once (None while loading or idle)."""
        if self._thread is None or self._thread.is_alive():
            return None
        self._thread.join()
        self._thread, done, self._done = None, self._done, None
        return done

    def close(self) -> None:
        """Wait for a load in progress and close what it opened."""
        if self._thread is not None:
            self._thread.join()
            done = self.poll()
            if done is not None and done.model is not None:
                done.model.engine.close()
