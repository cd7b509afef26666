"""DeepLabV3+ for Severstal frames: validated config and the encoder → decoder → heads wiring."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from defectd.engines.errors import InvalidSetting
from defectd.engines.postprocess import HEADS
from defectd.training.model.decoder import DeepLabV3PlusDecoder
from defectd.training.model.encoders import (
    ENCODERS,
    OUTPUT_STRIDES,
    build_encoder,
    load_imagenet_weights,
)
from defectd.training.model.heads import PresenceHead, SegmentationHead


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a DeepLabV3+ model; invalid values raise ``ValueError`` on creation.

    The defaults are the full-size model (ResNet-18, 256 decoder channels); a narrower
    encoder (``encoder_width=0.5``) with ``decoder_channels=64`` or ``128`` is the CPU model.
    `head` is ``sigmoid`` (independent classes: ``num_classes`` mask logits) or ``softmax``
    (exclusive classes: ``num_classes + 1`` mask logits, channel 0 the background); the
    presence head has ``num_classes`` logits either way.
    """

    encoder: str = "resnet18"
    in_channels: int = 1
    num_classes: int = 4
    output_stride: int = 16
    encoder_width: float = 1.0
    decoder_channels: int = 256
    aspp_dropout: float = 0.5
    presence_dropout: float = 0.2
    head: str = "sigmoid"

    @property
    def mask_channels(self) -> int:
        """Logits of the segmentation head: one per class, plus the background for softmax."""
        return self.num_classes + (1 if self.head == "softmax" else 0)

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise InvalidSetting(f"Wrong head `{self.head}`, supported heads: {list(HEADS)}")
        if self.encoder not in ENCODERS:
            raise InvalidSetting(
                f"Wrong encoder name `{self.encoder}`, supported encoders: {list(ENCODERS)}"
            )
        if self.output_stride not in OUTPUT_STRIDES:
            raise InvalidSetting(
                f"output_stride must be one of {list(OUTPUT_STRIDES)}, got {self.output_stride}"
            )
        for name in ("in_channels", "num_classes", "decoder_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidSetting(f"{name} must be a positive integer, got {value!r}")
        if not self.encoder_width > 0:
            raise InvalidSetting(
                f"encoder_width must be > 0 (1.0 full, 0.5 half), got {self.encoder_width}"
            )
        for name in ("aspp_dropout", "presence_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InvalidSetting(f"{name} must be in [0, 1), got {value}")


def _is_tracing() -> bool:
    # torch.jit.is_tracing is untyped and missing from torch.jit.__all__.
    return bool(torch.jit.is_tracing())  # type: ignore[attr-defined, no-untyped-call]


def class_probabilities(masks: Tensor, head: str) -> Tensor:
    """N×C×H×W class probabilities from mask logits: a sigmoid per class, or for ``softmax``
    the softmax over background + classes without the background channel (which is then
    1 − Σ probs)."""
    if head == "softmax":
        return masks.softmax(dim=1)[:, 1:]
    return masks.sigmoid()


class ModelOutput(NamedTuple):
    """Model outputs, both logits (`class_probabilities` and a sigmoid give probabilities).

    A NamedTuple so tracing and ONNX export see a plain tuple of two tensors.
    """

    masks: Tensor  # N×mask_channels×H×W per-pixel logits (background first for softmax)
    presence: Tensor  # N×num_classes image-level logits


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ with a class-presence head; it only wires encoder → decoder → heads.

    Input: float N×C×H×W, already normalised, H and W multiples of the output stride.
    Output: ``ModelOutput`` of logits. Probabilities are made later, at export or inference
    (`class_probabilities`): independent sigmoids where defect classes can co-occur, a softmax
    with a background channel where they are exclusive.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        self.encoder = build_encoder(
            config.encoder, config.in_channels, config.output_stride, config.encoder_width
        )
        self.decoder = DeepLabV3PlusDecoder(
            low_channels=self.encoder.low_channels,
            high_channels=self.encoder.high_channels,
            out_channels=config.decoder_channels,
            output_stride=config.output_stride,
            aspp_dropout=config.aspp_dropout,
        )
        self.segmentation_head = SegmentationHead(config.decoder_channels, config.mask_channels)
        self.presence_head = PresenceHead(
            self.encoder.high_channels, config.num_classes, config.presence_dropout
        )

    def check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` naming the expected shape when ``x`` does not fit the model."""
        channels, stride = self.config.in_channels, self.config.output_stride
        expected = f"model expects N×{channels}×H×W with H, W multiples of {stride}"
        shape = "×".join(str(size) for size in x.shape)
        if x.ndim != 4 or x.shape[1] != channels or x.shape[2] % stride or x.shape[3] % stride:
            raise ValueError(f"{expected}, got {shape or 'a scalar'}")
        if not x.is_floating_point():
            raise ValueError(f"model expects a normalised float tensor, got {x.dtype}")

    def forward(self, x: Tensor) -> ModelOutput:
        """Mask and presence logits for a normalised N×C×H×W float batch."""
        # Shape checks would be baked into a trace or exported graph as constants.
        if not (_is_tracing() or torch.onnx.is_in_onnx_export()):
            self.check_input(x)
        features = self.encoder(x)
        decoded = self.decoder(features.low, features.high)
        return ModelOutput(
            masks=self.segmentation_head(decoded, x),
            presence=self.presence_head(features.high),
        )

    @torch.inference_mode()
    def predict(self, x: Tensor) -> ModelOutput:
        """Probabilities (`class_probabilities`, C per pixel) in eval mode, without autograd."""
        if self.training:
            self.eval()
        masks, presence = self(x)
        return ModelOutput(class_probabilities(masks, self.config.head), presence.sigmoid())


def build_model(
    config: ModelConfig | None = None, encoder_weights: str | Path | None = None
) -> DeepLabV3Plus:
    """Build a model; ``encoder_weights`` is a local torchvision ResNet ImageNet checkpoint."""
    model = DeepLabV3Plus(config)
    if encoder_weights is not None:
        load_imagenet_weights(model.encoder, encoder_weights)
    return model
