"""DeepLabV3+ in plain PyTorch: encoder registry, decoder blocks, heads and the model wiring."""

from defectd.training.model.encoders import ENCODERS, build_encoder, load_imagenet_weights
from defectd.training.model.model import DeepLabV3Plus, ModelConfig, ModelOutput, build_model

__all__ = [
    "ENCODERS",
    "DeepLabV3Plus",
    "ModelConfig",
    "ModelOutput",
    "build_encoder",
    "build_model",
    "load_imagenet_weights",
]
