"""PyTorch backend: the model directory's TorchScript graph on CUDA (FP16) or the CPU.

Built from ``model.torchscript.pt``, which `defectd export` traces from the same weights as
the ONNX files, so this backend needs torch but not ``training/``.

On CUDA:

- FP16 (``.half()``: the graph's normalisation follows the weights' dtype) or FP32;
- channels_last weights and input, so cuDNN picks its NHWC tensor-core kernels;
- one CUDA Graph per batch size, captured the first time that size runs (`warmup()` captures
  every size the batcher can send), replayed afterwards: no per-layer launch cost;
- frames go up through a pinned staging buffer allocated once for ``max_batch``.

On the CPU it runs FP32, frozen with BatchNorm folded (the fallback when nothing else is
installed); threads configurable like ONNX Runtime's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from defectd.engines.engine import Engine, EngineInfo, EngineOutput
from defectd.engines.errors import InvalidSetting, MissingDependency
from defectd.engines.model_card import InputSpec, ModelCard

log = logging.getLogger(__name__)
TORCH_INSTALL_HINT = (
    "the torch backend needs PyTorch: pip install 'defectd[train]' (CPU), or a CUDA build of "
    "torch on a GPU machine (see README, Installing on a GPU machine)"
)


def import_torch() -> Any:
    """torch, or RuntimeError naming what to install."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependency(TORCH_INSTALL_HINT) from exc
    return torch


def cuda_available() -> bool:
    """True when torch is installed with CUDA and sees a GPU."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cuda_memory() -> tuple[int, int] | None:
    """(bytes torch holds in this process, bytes free on the device), None without CUDA: what
    a model swap checks before it opens a second engine (daemon/stages/model_swap.py)."""
    if not cuda_available():
        return None
    import torch

    free, _total = torch.cuda.mem_get_info()
    return int(torch.cuda.memory_reserved()), int(free)


@dataclass
class _CapturedGraph:
    """A CUDA Graph for one batch size with its static input and outputs."""

    graph: Any  # torch.cuda.CUDAGraph
    frames: Any  # static uint8 input tensor on the GPU
    outputs: tuple[Any, Any, Any]  # static (probs, presence, peak) on the GPU


class TorchEngine(Engine):
    """TorchScript DeepLabV3+ on CUDA (FP16/FP32, CUDA Graphs) or on the CPU (FP32)."""

    def __init__(
        self,
        path: Path | str,
        spec: InputSpec = InputSpec(),  # noqa: B008  (frozen dataclass)
        device: str = "cpu",
        precision: str = "fp32",
        max_batch: int = 32,
        classes: tuple[str, ...] = ("1", "2", "3", "4"),
        model: str = "",
        cuda_graphs: bool = True,
        threads: int | None = None,
    ) -> None:
        torch = import_torch()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: TorchScript file not found; re-run `defectd export` for this model"
            )
        if device not in ("cpu", "cuda"):
            raise InvalidSetting(f"torch device must be cpu or cuda, got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise MissingDependency(
                "torch device cuda: this torch has no usable CUDA (CPU build, or no GPU/driver); "
                "use device cpu, or install a CUDA build of torch"
            )
        if precision == "fp16" and device == "cpu":
            raise InvalidSetting(
                "torch fp16 runs on CUDA only; on the CPU use precision fp32 "
                "(or the onnxruntime backend)"
            )
        if threads is not None:
            if threads < 1:
                raise InvalidSetting(f"torch threads must be at least 1, got {threads}")
            torch.set_num_threads(threads)
        self._torch = torch
        self._device = torch.device(device)
        dtype = torch.float16 if precision == "fp16" else torch.float32
        module = torch.jit.load(str(path), map_location=self._device)
        module = module.to(dtype=dtype).eval()
        if device == "cuda":
            module = module.to(memory_format=torch.channels_last)
        else:
            # Fold BatchNorm into the convolutions and pick oneDNN kernels: 59 → 43 ms per
            # frame on 2 cores (measured with no_grad; not applied on CUDA, where it is untested).
            module = torch.jit.optimize_for_inference(torch.jit.freeze(module))
        self._module = module
        self._use_graphs = cuda_graphs and device == "cuda"
        self._graphs: dict[int, _CapturedGraph] = {}
        self._staging = (
            torch.empty(
                (max_batch, spec.channels, spec.height, spec.width),
                dtype=torch.uint8,
                pin_memory=True,
            )
            if device == "cuda"
            else None
        )
        where = device
        if device == "cuda":
            index = self._device.index or 0
            where = f"cuda:{index} {torch.cuda.get_device_name(index)}"
        super().__init__(
            EngineInfo("torch", where, precision, max_batch, model or path.name, classes), spec
        )

    @classmethod
    def from_card(
        cls,
        card: ModelCard,
        device: str = "cpu",
        precision: str = "fp32",
        max_batch: int = 32,
        cuda_graphs: bool = True,
        threads: int | None = None,
    ) -> TorchEngine:
        return cls(
            card.file_path("torch"),
            card.input,
            device,
            precision,
            max_batch,
            card.classes,
            f"{card.name} {card.version}",
            cuda_graphs,
            threads,
        )

    def _run(self, batch: npt.NDArray[np.uint8]) -> EngineOutput:
        torch = self._torch
        n = batch.shape[0]
        # no_grad, not inference_mode: TorchScript runs about 15% slower under inference_mode.
        with torch.no_grad():
            if self._device.type == "cpu":
                probs, presence, peak = self._module(torch.from_numpy(batch))
            else:
                assert self._staging is not None
                staged = self._staging[:n]
                staged.copy_(torch.from_numpy(batch))
                if self._use_graphs:
                    captured = self._graph_for(n)
                    captured.frames.copy_(staged, non_blocking=True)
                    captured.graph.replay()
                    probs, presence, peak = captured.outputs
                else:
                    frames = staged.to(self._device, non_blocking=True)
                    frames = frames.contiguous(memory_format=torch.channels_last)
                    probs, presence, peak = self._module(frames)
            return EngineOutput(probs.cpu().numpy(), presence.cpu().numpy(), peak.cpu().numpy())

    def _graph_for(self, n: int) -> _CapturedGraph:
        """The CUDA Graph for batch size n, captured on first use."""
        captured = self._graphs.get(n)
        if captured is not None:
            return captured
        torch = self._torch
        spec = self.input
        frames = torch.zeros(
            (n, spec.channels, spec.height, spec.width), dtype=torch.uint8, device=self._device
        ).contiguous(memory_format=torch.channels_last)
        # Warm up on a side stream first (TorchScript's profiling runs and cuDNN's algorithm
        # search must not happen inside the capture), then capture one forward pass.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._module(frames)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = self._module(frames)
        captured = _CapturedGraph(graph, frames, tuple(outputs))
        self._graphs[n] = captured
        log.info("torch: captured a CUDA graph for batch %d", n)
        return captured

    def _release(self) -> None:
        self._graphs.clear()
        self._staging = None
        del self._module
        if self._device.type == "cuda":
            self._torch.cuda.empty_cache()
