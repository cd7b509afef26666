"""uint8 frames in, probabilities out: the graph that is trained against and exported.

Line cameras are mono, so frames are always N×1×H×W; a model built with ``in_channels=3``
(to keep an ImageNet RGB stem as it is) sees the grey channel repeated three times.
The engine takes uint8 frames (a 1600×256 mono frame crosses PCIe as 400 KB) and normalises
inside the graph; training feeds the same uint8 crops through the same `Normalise`, so the
exported engine cannot drift from what was trained.

An input size that is not a multiple of the output stride (NEU-Seg's 200×200) is padded inside
the exported graph: `InferenceGraph(input_shape=...)` pads the normalised frame at the bottom
and right with 0 (the training grey mean, what validation pads with) and crops the outputs
back, so every backend takes and returns the card's size unchanged. The padding is constant
for the fixed input size: no data-dependent shape in the trace.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from defectd.training.model.model import DeepLabV3Plus, ModelOutput, class_probabilities

OUTPUT_NAMES = ("probs", "presence", "peak")
INPUT_NAME = "frames"


class Normalise(nn.Module):
    """uint8 (or float 0..255) → float ``(x / 255 − mean) / std`` in the module's dtype."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        if not std > 0:
            raise ValueError(f"normalisation std must be > 0, got {std}")
        self.register_buffer("mean", torch.tensor(mean * 255.0))
        self.register_buffer("std", torch.tensor(std * 255.0))

    def forward(self, frames: Tensor) -> Tensor:
        # uint8 − float promotes to the buffers' dtype at run time (no cast baked into a
        # trace), so a traced graph follows a later .half().
        return (frames - self.mean) / self.std


def to_model_channels(frames: Tensor, channels: int) -> Tensor:
    """Grey N×1×H×W frames repeated to the model's channels (3 for an RGB-stem model)."""
    # expand() is a no-op on frames that already have `channels`; no shape test, so no
    # data-dependent branch in a trace.
    return frames.expand(-1, channels, -1, -1) if channels > 1 else frames


class TrainingGraph(nn.Module):
    """Normalise + DeepLabV3+, returning logits for the loss."""

    def __init__(self, model: DeepLabV3Plus, mean: float, std: float) -> None:
        super().__init__()
        self.normalise = Normalise(mean, std)
        self.model = model

    def forward(self, frames: Tensor) -> ModelOutput:
        grey = to_model_channels(frames, self.model.config.in_channels)
        out: ModelOutput = self.model(self.normalise(grey))
        return out


class InferenceGraph(nn.Module):
    """The exported engine: uint8 N×C×H×W frames → (probs, presence, peak).

    - ``probs``: N×classes×H×W per-pixel probabilities (independent sigmoids; for a softmax
      head the softmax without its background channel, background = 1 − Σ probs);
    - ``presence``: N×classes image-level presence probabilities;
    - ``peak``: N×classes highest pixel probability per class, so a clean frame (most frames)
      can skip CPU post-processing without reading ``probs``.

    With `input_shape` (H, W) not a multiple of the model's output stride, the frames are
    padded to the next multiple inside the graph and the outputs cropped back to H×W.
    """

    def __init__(
        self,
        model: DeepLabV3Plus,
        mean: float,
        std: float,
        input_shape: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.normalise = Normalise(mean, std)
        self.model = model
        stride = model.config.output_stride
        self.shape = input_shape
        self.padding = (0, 0) if input_shape is None else stride_padding(input_shape, stride)

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        grey = to_model_channels(frames, self.model.config.in_channels)
        x = self.normalise(grey)
        bottom, right = self.padding
        if bottom or right:
            x = F.pad(x, (0, right, 0, bottom))
        masks, presence = self.model(x)
        probs = class_probabilities(masks, self.model.config.head)
        if (bottom or right) and self.shape is not None:
            probs = probs[:, :, : self.shape[0], : self.shape[1]]
        return probs, presence.sigmoid(), probs.amax(dim=(2, 3))


def stride_padding(shape: tuple[int, int], stride: int) -> tuple[int, int]:
    """(bottom, right) pixels that bring an H×W frame up to multiples of `stride`."""
    return (-shape[0]) % stride, (-shape[1]) % stride
