"""ResNet encoders in plain PyTorch, named so torchvision's ImageNet checkpoints load as is.

Parameter and buffer names follow torchvision's ``ResNet`` (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0``, ...) without the ``fc`` classifier, so
``load_imagenet_weights`` can read a downloaded ``resnet18-*.pth`` from a local file. The
output stride is lowered from 32 to 16 or 8 the way torchvision's
``replace_stride_with_dilation`` does it: the last stages keep their resolution and dilate
their 3×3 convolutions instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from defectd.engines.errors import InvalidInput, InvalidSetting

OUTPUT_STRIDES = (8, 16)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3×3 convolution whose padding keeps the size (up to the stride) at any dilation."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        dilation=dilation,
        bias=False,
    )


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        # Unlike torchvision, dilation is allowed: DeepLab needs it for ResNet-18/34 too.
        self.conv1 = conv3x3(in_channels, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """Residual block output, same channels as ``planes``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: Tensor = self.relu(out + identity)
        return result


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3, 1×1 expand (×4) with a residual connection (ResNet-50)."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        # Stride on the 3×3 convolution, as torchvision's "ResNet v1.5".
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """Residual block output, ``planes × 4`` channels."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        result: Tensor = self.relu(out + identity)
        return result


@dataclass(frozen=True)
class EncoderSpec:
    """How one registered ResNet is built: block type and number of blocks per stage."""

    block: type[BasicBlock] | type[Bottleneck]
    layers: tuple[int, int, int, int]


ENCODERS: dict[str, EncoderSpec] = {
    "resnet18": EncoderSpec(BasicBlock, (2, 2, 2, 2)),
    "resnet34": EncoderSpec(BasicBlock, (3, 4, 6, 3)),
    "resnet50": EncoderSpec(Bottleneck, (3, 4, 6, 3)),
}


class EncoderFeatures(NamedTuple):
    """What the decoder needs: stride-4 detail and the deepest, widest-context features."""

    low: Tensor  # layer1 output, 1/4 of the input size
    high: Tensor  # layer4 output, 1/output_stride of the input size


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class ResNetEncoder(nn.Module):
    """ResNet trunk without the classifier, returning layer1 and layer4 features.

    ``width`` scales every stage's channels (0.5 gives a narrower, faster ResNet for CPU
    inference); ImageNet weights only fit ``width=1.0``.
    """

    def __init__(
        self,
        spec: EncoderSpec,
        in_channels: int = 1,
        output_stride: int = 16,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise InvalidSetting(
                f"output_stride must be one of {list(OUTPUT_STRIDES)}, got {output_stride}"
            )
        if not width > 0:
            raise InvalidSetting(f"encoder width must be > 0, got {width}")
        if in_channels < 1:
            raise InvalidSetting(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels = in_channels
        self.output_stride = output_stride
        self.width = width
        block = spec.block
        # torchvision's replace_stride_with_dilation for layer2..4.
        dilate = (False, output_stride == 8, True)

        self._inplanes = _scaled(64, width)
        self._dilation = 1
        self.conv1 = nn.Conv2d(
            in_channels, self._inplanes, kernel_size=7, stride=2, padding=3, bias=False
        )
        self.bn1 = nn.BatchNorm2d(self._inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, _scaled(64, width), spec.layers[0])
        self.layer2 = self._make_layer(block, _scaled(128, width), spec.layers[1], 2, dilate[0])
        self.layer3 = self._make_layer(block, _scaled(256, width), spec.layers[2], 2, dilate[1])
        self.layer4 = self._make_layer(block, _scaled(512, width), spec.layers[3], 2, dilate[2])
        self.low_channels = _scaled(64, width) * block.expansion
        self.high_channels = _scaled(512, width) * block.expansion

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        downsample: nn.Module | None = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(
                    self._inplanes,
                    planes * block.expansion,
                    kernel_size=1,
                    stride=stride,
                    bias=False,
                ),
                nn.BatchNorm2d(planes * block.expansion),
            )
        # The first block keeps the previous dilation, as torchvision does.
        layers: list[nn.Module] = [
            block(self._inplanes, planes, stride, previous_dilation, downsample)
        ]
        self._inplanes = planes * block.expansion
        layers += [block(self._inplanes, planes, dilation=self._dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> EncoderFeatures:
        """Stride-4 (layer1) and deepest (layer4) features of an N×C×H×W batch."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        low = self.layer1(x)
        high = self.layer4(self.layer3(self.layer2(low)))
        return EncoderFeatures(low, high)


def build_encoder(
    name: str, in_channels: int = 1, output_stride: int = 16, width: float = 1.0
) -> ResNetEncoder:
    """Build a registered encoder by name; unknown names list the supported ones."""
    if name not in ENCODERS:
        raise InvalidSetting(f"Wrong encoder name `{name}`, supported encoders: {list(ENCODERS)}")
    return ResNetEncoder(ENCODERS[name], in_channels, output_stride, width)


def load_imagenet_weights(encoder: ResNetEncoder, path: str | Path) -> None:
    """Load a torchvision ResNet ImageNet checkpoint (a state dict saved to ``path``).

    The ``fc`` classifier is dropped. For grey input (``in_channels=1``) the RGB ``conv1``
    filters are summed over their 3 input channels, which gives the same response to a grey
    image as the RGB network gives to that image replicated three times.
    """
    if encoder.width != 1.0:
        raise InvalidInput(
            f"ImageNet weights fit only encoder width 1.0, this encoder has width "
            f"{encoder.width}; train a narrower encoder from scratch"
        )
    loaded = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        raise InvalidInput(f"{path}: expected a state dict, got {type(loaded).__name__}")
    state = {key: value for key, value in loaded.items() if not key.startswith("fc.")}

    conv1 = state.get("conv1.weight")
    if conv1 is not None and conv1.shape[1] != encoder.in_channels:
        if conv1.shape[1] == 3 and encoder.in_channels == 1:
            state["conv1.weight"] = conv1.sum(dim=1, keepdim=True)
        else:
            raise InvalidInput(
                f"{path}: conv1 has {conv1.shape[1]} input channels, the encoder "
                f"{encoder.in_channels}; only 3 → 1 (grey) and 3 → 3 are supported"
            )

    own = encoder.state_dict()
    # Older checkpoints predate BatchNorm's num_batches_tracked buffer; keep ours for those.
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    if missing or unexpected:
        raise InvalidInput(
            f"{path} does not fit this encoder (is it the right ResNet depth?): "
            f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}, "
            f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}"
        )
    mismatched = [
        f"{key}: checkpoint {tuple(state[key].shape)}, encoder {tuple(value.shape)}"
        for key, value in own.items()
        if state[key].shape != value.shape
    ]
    if mismatched:
        raise InvalidInput(f"{path}: shape mismatch: {'; '.join(mismatched[:5])}")
    encoder.load_state_dict(state, strict=True)
