"""uint8 frames in, probabilities out: the graph that is trained against and exported.

Line cameras are mono, so frames are always N×1×H×W; a model built with ``in_channels=3``
(to keep an ImageNet RGB stem as it is) sees the grey channel repeated three times.
The engine takes uint8 frames (a 1600×256 mono frame crosses PCIe as 400 KB) and normalises
inside the graph; training feeds the same uint8 crops through the same `Normalise`, so the
exported engine cannot drift from what was trained.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defectd.training.model.model import DeepLabV3Plus, ModelOutput

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

    - ``probs``: N×classes×H×W per-pixel probabilities (independent sigmoids);
    - ``presence``: N×classes image-level presence probabilities;
    - ``peak``: N×classes highest pixel probability per class, so a clean frame (most frames)
      can skip CPU post-processing without reading ``probs``.
    """

    def __init__(self, model: DeepLabV3Plus, mean: float, std: float) -> None:
        super().__init__()
        self.normalise = Normalise(mean, std)
        self.model = model

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        grey = to_model_channels(frames, self.model.config.in_channels)
        masks, presence = self.model(self.normalise(grey))
        probs = masks.sigmoid()
        return probs, presence.sigmoid(), probs.amax(dim=(2, 3))
