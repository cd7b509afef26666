"""TensorRT backend: a cached FP16 plan run with pinned buffers and overlapped copies.

`TensorRTEngine.from_card` builds the plan from ``model.fp16.onnx`` once and caches it
(`engines.engine_cache`); later starts load it. A cached plan that fails its checks or that
TensorRT cannot deserialize is rebuilt, with a warning, instead of stopping the daemon.

Runtime (pycuda): IO buffers for `max_batch` frames are allocated once: two sets, each with
pinned host arrays, device memory and three events. `infer` runs one batch on the compute
stream. `infer_many` pipelines batches over two streams, a compute stream and a copy stream,
alternating the two buffer sets: while batch k computes, batch k-1's results come down and
batch k+1 goes up. Events order it: compute k waits for upload k; download k waits for
compute k. The one execution context is only ever enqueued on the compute stream, so its
scratch memory is never shared by two batches in flight.

`tensorrt` and `pycuda` are imported when an engine is opened, not when this module is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from defectd.engines.engine import Engine, EngineInfo, EngineOutput, as_batch
from defectd.engines.engine_cache import CacheKey, EngineCache, io_buffer_sizes, profile_shapes
from defectd.engines.errors import InvalidSetting
from defectd.engines.model_card import InputSpec, ModelCard
from defectd.engines.tensorrt_build import (
    INPUT_NAME,
    TensorRTError,
    build_serialized_engine,
    gpu_identity,
    import_cuda,
    import_tensorrt,
    tensorrt_version,
    trt_logger,
)

log = logging.getLogger(__name__)
OUTPUTS = ("probs", "presence", "peak")


class EngineLoadError(TensorRTError):
    """A plan TensorRT cannot deserialize, or whose IO does not fit the model card."""


def engine_key(card: ModelCard, max_batch: int, opt_batch: int, workspace_mb: int) -> CacheKey:
    """The cache key of `card`'s FP16 plan on this machine's GPU 0 and TensorRT."""
    card.onnx_path("fp16")  # ModelCardError naming the fix when the card has no FP16 ONNX
    profile = profile_shapes(card.input, opt_batch, max_batch)
    version = tensorrt_version()
    gpu_name, capability = gpu_identity()
    return CacheKey(
        card.name,
        card.files["fp16"].sha256,
        version,
        gpu_name,
        capability,
        profile,
        workspace_mb,
    )


def build_and_store(card: ModelCard, key: CacheKey, cache: EngineCache) -> bytes:
    """Build `card`'s plan for `key` and cache it; the cache dir is checked before building."""
    cache.check_writable()  # fail now, not after minutes of building
    plan = build_serialized_engine(
        card.onnx_path("fp16"), key.profile, key.workspace_mb, cache.timing_cache_path(key), log
    )
    log.info("cached engine %s (%s)", cache.store(key, plan), key.describe())
    return plan


def ensure_engine(
    card: ModelCard,
    max_batch: int,
    opt_batch: int,
    cache_dir: Path,
    workspace_mb: int = 4096,
    force: bool = False,
) -> tuple[Path, bool]:
    """The cached plan's path for `card` on this machine, and whether it had to be built."""
    cache = EngineCache(cache_dir)
    key = engine_key(card, max_batch, opt_batch, workspace_mb)
    if not force and cache.load(key) is not None:
        return cache.path_for(key), False
    build_and_store(card, key, cache)
    return cache.path_for(key), True


@dataclass
class _Slot:
    """One set of IO buffers for `max_batch` frames."""

    host: dict[str, npt.NDArray[Any]]  # pinned (page-locked), so copies are truly async
    device: dict[str, Any]  # pycuda DeviceAllocation per tensor
    uploaded: Any  # events
    computed: Any
    downloaded: Any


class TensorRTEngine(Engine):
    """A deserialized plan with its execution context, streams and buffers on GPU 0."""

    def __init__(
        self,
        plan: bytes,
        spec: InputSpec,
        classes: tuple[str, ...],
        max_batch: int,
        model: str = "",
    ) -> None:
        if max_batch < 1:
            raise InvalidSetting(f"max_batch must be at least 1, got {max_batch}")
        trt = import_tensorrt()
        self._cuda = import_cuda()
        gpu = self._cuda.Device(0)
        # The primary context is the one TensorRT's CUDA runtime calls use.
        self._gpu_context: Any = gpu.retain_primary_context()
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._streams: list[Any] = []
        self._slots: list[_Slot] = []
        self._pipelining = False
        try:
            with self._active():
                self._runtime = trt.Runtime(trt_logger(trt, log))
                self._engine = self._runtime.deserialize_cuda_engine(plan)
                if self._engine is None:
                    raise EngineLoadError(
                        "TensorRT could not deserialize the plan (corrupt, or built by another "
                        "TensorRT or GPU)"
                    )
                self._context = self._engine.create_execution_context()
                if self._context is None:
                    raise EngineLoadError("no execution context: is the GPU out of memory?")
                shapes, dtypes = self._check_io(trt, spec, len(classes), max_batch)
                self._streams = [self._cuda.Stream(), self._cuda.Stream()]  # compute, copy
                self._slots = [self._allocate(shapes, dtypes) for _ in range(2)]
        except BaseException:
            self._free()
            raise
        precision = "fp16" if dtypes["probs"] == np.float16 else "fp32"
        info = EngineInfo("tensorrt", f"cuda:0 {gpu.name()}", precision, max_batch, model, classes)
        super().__init__(info, spec)

    @classmethod
    def from_card(
        cls,
        card: ModelCard,
        max_batch: int = 32,
        opt_batch: int = 8,
        *,
        cache_dir: Path,
        workspace_mb: int = 4096,
    ) -> TensorRTEngine:
        """Load the cached plan for `card` on this machine, or build and cache it first."""
        cache = EngineCache(cache_dir)
        key = engine_key(card, max_batch, opt_batch, workspace_mb)
        model = f"{card.name} {card.version}"
        plan = cache.load(key)
        if plan is not None:
            try:
                engine = cls(plan, card.input, card.classes, max_batch, model)
            except EngineLoadError as exc:
                log.warning(
                    "cached engine %s is unusable (%s); rebuilding", cache.path_for(key), exc
                )
            else:
                log.info("engine: cached %s (%s)", cache.path_for(key), key.describe())
                return engine
        plan = build_and_store(card, key, cache)
        return cls(plan, card.input, card.classes, max_batch, model)

    def __enter__(self) -> TensorRTEngine:  # so `with` keeps `infer_many` in the type
        return self

    def infer_many(self, batches: Iterable[npt.NDArray[Any]]) -> Iterator[EngineOutput]:
        """Results for each batch, in order, with uploads and downloads overlapping compute.

        Results lag one batch: the output for batch k is yielded after batch k+1 was sent.
        Do not call `infer` while the iterator is open.
        """
        if self.closed:
            raise RuntimeError(f"{self.name} engine is closed; open a new one")
        return self._pipeline(batches)

    # -- the work ------------------------------------------------------------------------

    @contextmanager
    def _active(self) -> Iterator[None]:
        """Make this engine's CUDA context current for the calls inside."""
        self._gpu_context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def _check_io(
        self, trt: Any, spec: InputSpec, num_classes: int, max_batch: int
    ) -> tuple[dict[str, tuple[int, ...]], dict[str, np.dtype[Any]]]:
        """Shapes at `max_batch` and dtypes of every IO tensor; EngineLoadError on a mismatch."""
        engine, context = self._engine, self._context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        if sorted(names) != sorted((INPUT_NAME, *OUTPUTS)) or (
            engine.get_tensor_mode(INPUT_NAME) != trt.TensorIOMode.INPUT
        ):
            raise EngineLoadError(f"engine IO {names}, expected input frames and {OUTPUTS}")
        if not context.set_input_shape(INPUT_NAME, (max_batch, *_frame(spec))):
            raise EngineLoadError(f"the engine's profile does not allow batch {max_batch}")
        shapes = {name: tuple(int(d) for d in context.get_tensor_shape(name)) for name in names}
        dtypes = {name: np.dtype(trt.nptype(engine.get_tensor_dtype(name))) for name in names}
        precision = "fp16" if dtypes["probs"] == np.float16 else "fp32"
        expected = io_buffer_sizes(spec, num_classes, max_batch, precision)
        actual = {name: prod(shapes[name]) * dtypes[name].itemsize for name in names}
        if dtypes[INPUT_NAME] != np.uint8 or actual != expected:
            raise EngineLoadError(
                f"engine IO {shapes} {dtypes} does not fit the model card "
                f"({num_classes} classes, uint8 input)"
            )
        return shapes, dtypes

    def _allocate(
        self, shapes: dict[str, tuple[int, ...]], dtypes: dict[str, np.dtype[Any]]
    ) -> _Slot:
        cuda = self._cuda
        host = {name: cuda.pagelocked_empty(shapes[name], dtypes[name]) for name in shapes}
        device = {name: cuda.mem_alloc(array.nbytes) for name, array in host.items()}
        slot = _Slot(host, device, cuda.Event(), cuda.Event(), cuda.Event())
        compute = self._streams[0]
        for event in (slot.uploaded, slot.computed, slot.downloaded):
            event.record(compute)  # recorded once, so the first wait on it is well defined
        compute.synchronize()
        return slot

    def _upload(self, slot: _Slot, batch: npt.NDArray[np.uint8], stream: Any) -> None:
        staged = slot.host[INPUT_NAME][: len(batch)]
        staged[...] = batch
        self._cuda.memcpy_htod_async(slot.device[INPUT_NAME], staged, stream)

    def _execute(self, slot: _Slot, n: int, stream: Any) -> None:
        context = self._context
        if not context.set_input_shape(INPUT_NAME, (n, *_frame(self.input))):
            raise TensorRTError(f"TensorRT refused input shape {(n, *_frame(self.input))}")
        for name, memory in slot.device.items():
            if not context.set_tensor_address(name, int(memory)):
                raise TensorRTError(f"TensorRT refused the device address of {name!r}")
        if not context.execute_async_v3(stream.handle):
            raise TensorRTError("execute_async_v3 failed; see the TensorRT errors logged above")

    def _download(self, slot: _Slot, n: int, stream: Any) -> None:
        for name in OUTPUTS:
            self._cuda.memcpy_dtoh_async(slot.host[name][:n], slot.device[name], stream)

    @staticmethod
    def _collect(slot: _Slot, n: int) -> EngineOutput:
        # Copies: the pinned arrays are reused by the next batch in this slot.
        probs, presence, peak = (slot.host[name][:n].copy() for name in OUTPUTS)
        return EngineOutput(probs, presence, peak)

    def _run(self, batch: npt.NDArray[np.uint8]) -> EngineOutput:
        if self._pipelining:
            raise RuntimeError("finish or close the infer_many iterator before calling infer")
        slot, stream, n = self._slots[0], self._streams[0], len(batch)
        with self._active():
            self._upload(slot, batch, stream)
            self._execute(slot, n, stream)
            self._download(slot, n, stream)
            stream.synchronize()
            return self._collect(slot, n)

    def _submit(self, slot: _Slot, batch: npt.NDArray[np.uint8]) -> None:
        """Queue upload (copy stream) and compute (compute stream) of `batch` in `slot`."""
        compute, copy = self._streams
        # The slot's last batch was downloaded and collected before this one was fetched,
        # so its pinned and device buffers are free; the waits keep that true by design.
        slot.uploaded.synchronize()
        self._upload(slot, batch, copy)
        slot.uploaded.record(copy)
        compute.wait_for_event(slot.uploaded)
        compute.wait_for_event(slot.downloaded)
        self._execute(slot, len(batch), compute)
        slot.computed.record(compute)

    def _drain(self, slot: _Slot, n: int) -> EngineOutput:
        """Queue the download of `slot` after its compute, wait for it, return the results."""
        copy = self._streams[1]
        copy.wait_for_event(slot.computed)
        self._download(slot, n, copy)
        slot.downloaded.record(copy)
        slot.downloaded.synchronize()
        return self._collect(slot, n)

    def _pipeline(self, batches: Iterable[npt.NDArray[Any]]) -> Iterator[EngineOutput]:
        if self._pipelining:
            raise RuntimeError("one infer_many at a time per engine")
        self._pipelining = True
        pending: tuple[_Slot, int] | None = None
        try:
            for index, frames in enumerate(batches):
                if self.closed:
                    raise RuntimeError(f"{self.name} engine was closed during infer_many")
                batch = as_batch(frames, self.input, self.info.max_batch)
                slot = self._slots[index % 2]
                with self._active():
                    self._submit(slot, batch)  # batch k goes up while k-1 still computes
                    done = self._drain(*pending) if pending is not None else None
                if done is not None:
                    yield done
                pending = (slot, len(batch))
            if pending is not None:
                if self.closed:
                    raise RuntimeError(f"{self.name} engine was closed during infer_many")
                with self._active():
                    last = self._drain(*pending)
                yield last
        finally:
            self._pipelining = False
            if not self.closed:
                self._synchronize()  # an abandoned iterator leaves no copy in flight

    def _synchronize(self) -> None:
        with self._active():
            for stream in self._streams:
                stream.synchronize()

    def _release(self) -> None:
        self._free()

    def _free(self) -> None:
        """Free buffers, then context, engine and runtime (in that order), then the context."""
        if self._gpu_context is None:
            return
        with self._active():
            for stream in self._streams:
                stream.synchronize()
            for slot in self._slots:
                for memory in slot.device.values():
                    memory.free()
                for array in slot.host.values():
                    allocation: Any = array.base  # pycuda's page-locked memory behind it
                    allocation.free()
            self._slots, self._streams = [], []
            self._context = None
            self._engine = None
            self._runtime = None
        self._gpu_context.detach()  # releases this engine's hold on the primary context
        self._gpu_context = None


def _frame(spec: InputSpec) -> tuple[int, int, int]:
    return spec.channels, spec.height, spec.width
