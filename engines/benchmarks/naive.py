"""The naive Kaggle-notebook inference loop, as the baseline `bench engine` compares against.

What the public Severstal notebooks do per frame: grey → RGB (``cv2.COLOR_GRAY2RGB``), /255,
ImageNet mean/std per channel, HWC → CHW float32, one frame per call, the full probability
maps pulled to the host, and post-processing that reads every map (no ``peak`` fast path).

Our model is 1-channel and normalises inside its graph, so after the notebook preprocessing
the three channels are folded back on the host (undo mean/std, ×255, channel mean) into a
float32 1×1×H×W frame: the model sees the same values as from uint8 (up to float rounding),
and the loop still pays for the notebook's float conversion. The fold-back is done on the
host, so the engine receives one float channel rather than three: that flatters the naive
loop slightly (less to copy to a GPU). JPEG decoding is not included on either side.

ONNX Runtime needs a float-input copy of the graph (`float_input_onnx`); torch takes the
float tensor directly through its own ``torch.jit.load`` of the model's TorchScript.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from defectd.engines.flops import import_onnx
from defectd.engines.model_card import ModelCard
from defectd.engines.postprocess import PostprocessConfig, postprocess

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
NAIVE_BACKENDS = ("onnxruntime", "torch")

FloatArray = npt.NDArray[np.float32]
# float32 N×1×H×W → (probs N×C×H×W, presence N×C) as numpy on the host
Runner = Callable[[FloatArray], tuple[npt.NDArray[Any], npt.NDArray[Any]]]


@dataclass(frozen=True)
class NaiveTiming:
    """Per-frame wall time of the notebook loop: preprocessing, inference, maps to host,
    post-processing."""

    frames: int
    frames_per_s: float
    p50_ms: float
    p99_ms: float


def notebook_preprocess(grey: npt.NDArray[np.uint8]) -> FloatArray:
    """A grey H×W frame as the notebooks feed it: RGB, ImageNet-normalised, float32 3×H×W."""
    rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB).astype(np.float32) / 255.0
    return np.ascontiguousarray(((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))


def fold_to_grey(chw: FloatArray) -> FloatArray:
    """Notebook 3×H×W input → the 1×1×H×W float 0..255 frame our graph normalises itself."""
    pixels = chw * IMAGENET_STD[:, None, None] + IMAGENET_MEAN[:, None, None]
    grey: FloatArray = pixels.mean(axis=0, keepdims=True, dtype=np.float32)[None] * np.float32(255)
    return grey


def float_input_onnx(source: Path, target: Path) -> Path:
    """Write a copy of `source` that takes float32 frames instead of uint8; return `target`.

    The graph's first op casts the uint8 input to its compute type: a Cast to float is
    removed (its consumers read the input directly), a Cast to float16 stays (now
    float32 → float16). ValueError when the input does not feed a Cast.
    """
    onnx = import_onnx()
    model = onnx.load(str(source))
    graph = model.graph
    name = graph.input[0].name
    cast = next((n for n in graph.node if n.op_type == "Cast" and name in n.input), None)
    if cast is None:
        raise ValueError(
            f"{source}: input {name!r} does not feed a Cast; not a uint8 defectd model"
        )
    graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    to = next(onnx.helper.get_attribute_value(a) for a in cast.attribute if a.name == "to")
    if to == onnx.TensorProto.FLOAT:
        output = cast.output[0]
        for node in graph.node:
            node.input[:] = [name if i == output else i for i in node.input]
        graph.node.remove(cast)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


@contextmanager
def onnxruntime_runner(
    card: ModelCard, precision: str, device: str, threads: int | None
) -> Iterator[Runner]:
    """An ONNX Runtime session on the float-input copy of the model's ONNX file."""
    import onnxruntime as ort

    from defectd.engines.backends.onnxruntime_backend import CUDA_PROVIDER, OUTPUTS

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers = [CUDA_PROVIDER, "CPUExecutionProvider"] if device == "cuda" else None
    with tempfile.TemporaryDirectory(prefix="defectd-naive-") as scratch:
        path = float_input_onnx(card.onnx_path(precision), Path(scratch) / "float_input.onnx")
        session = ort.InferenceSession(
            str(path), options, providers=providers or ["CPUExecutionProvider"]
        )
        input_name = session.get_inputs()[0].name

        def run(frame: FloatArray) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
            probs, presence, _ = session.run(list(OUTPUTS), {input_name: frame})
            return np.asarray(probs), np.asarray(presence)

        yield run


@contextmanager
def torch_runner(card: ModelCard, precision: str, device: str) -> Iterator[Runner]:
    """The model's TorchScript, eager, fed float tensors (no CUDA Graphs, no channels_last)."""
    from defectd.engines.backends.torch_backend import import_torch

    torch = import_torch()
    target = torch.device(device)
    dtype = torch.float16 if precision == "fp16" else torch.float32
    with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit; see training/export.py
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(card.file_path("torch")), map_location=target)
    module = module.to(dtype=dtype).eval()

    def run(frame: FloatArray) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        with torch.no_grad():
            probs, presence, _ = module(torch.from_numpy(frame).to(target, dtype))
        return probs.float().cpu().numpy(), presence.float().cpu().numpy()

    yield run


def time_naive_loop(
    run: Runner,
    frames: Sequence[npt.NDArray[np.uint8]],
    thresholds: PostprocessConfig,
    seconds: float,
    warmup: int = 2,
) -> NaiveTiming:
    """Run the notebook loop over `frames` (cycled) for `seconds` after `warmup` frames."""

    def one(grey: npt.NDArray[np.uint8]) -> None:
        probs, presence = run(fold_to_grey(notebook_preprocess(grey)))
        postprocess(probs[0], presence[0], thresholds)  # every map read: no peak fast path

    for index in range(warmup):
        one(frames[index % len(frames)])
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while not times or time.perf_counter() < deadline:
        grey = frames[len(times) % len(frames)]
        start = time.perf_counter()
        one(grey)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1e3
    return NaiveTiming(
        frames=len(times),
        frames_per_s=len(times) / float(np.sum(times)),
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
    )
