"""DeepLabV3+ decoder blocks: separable convolutions, ASPP and the stride-4 fusion.

Only export-friendly operations are used: every resize is ``F.interpolate`` to a size read
from a tensor's shape (bilinear, ``align_corners=False``), so the graph exports to ONNX with a
dynamic batch axis and runs in ONNX Runtime and TensorRT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOW_LEVEL_CHANNELS = 48  # the paper's projection of the stride-4 features


def atrous_rates(output_stride: int) -> tuple[int, int, int]:
    """ASPP dilation rates: (6, 12, 18) at output stride 16, doubled at 8."""
    if output_stride not in (8, 16):
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
    scale = 16 // output_stride
    return (6 * scale, 12 * scale, 18 * scale)


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SeparableConv2d(nn.Sequential):
    """Depthwise 3×3 (optionally dilated) then pointwise 1×1, BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                in_channels,
                kernel_size=3,
                padding=dilation,
                dilation=dilation,
                groups=in_channels,
                bias=False,
            ),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ASPPPooling(nn.Module):
    """Image-level context: global average → 1×1 conv → BN → ReLU → back to feature size.

    The BatchNorm sees one value per channel and image, so training needs batches of 2 or more.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.project = _conv_bn_relu(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """N×out×h×w, constant over each image."""
        pooled = self.project(x.mean(dim=(2, 3), keepdim=True))
        return F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1×1, three dilated separable 3×3 and image pooling.

    The five branches are concatenated and projected back to ``out_channels`` with a 1×1
    convolution followed by dropout.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        rates: tuple[int, int, int] = (6, 12, 18),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [
                _conv_bn_relu(in_channels, out_channels),
                *(SeparableConv2d(in_channels, out_channels, rate) for rate in rates),
                ASPPPooling(in_channels, out_channels),
            ]
        )
        self.project = nn.Sequential(
            _conv_bn_relu(len(self.branches) * out_channels, out_channels),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        """N×out×h×w features at the input's resolution."""
        out: Tensor = self.project(torch.cat([branch(x) for branch in self.branches], dim=1))
        return out


class DeepLabV3PlusDecoder(nn.Module):
    """ASPP on the deepest features, upsampled to stride 4 and fused with layer1 detail.

    The result has ``out_channels`` channels at 1/4 of the input size.
    """

    def __init__(
        self,
        low_channels: int,
        high_channels: int,
        out_channels: int = 256,
        output_stride: int = 16,
        aspp_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.aspp = ASPP(high_channels, out_channels, atrous_rates(output_stride), aspp_dropout)
        self.low_project = _conv_bn_relu(low_channels, LOW_LEVEL_CHANNELS)
        self.fuse = nn.Sequential(
            SeparableConv2d(out_channels + LOW_LEVEL_CHANNELS, out_channels),
            SeparableConv2d(out_channels, out_channels),
        )
        self.out_channels = out_channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        """Fuse stride-4 ``low`` and deepest ``high`` encoder features."""
        context = self.aspp(high)
        # Resize to layer1's exact size (×4 at output stride 16, ×2 at 8).
        context = F.interpolate(context, size=low.shape[-2:], mode="bilinear", align_corners=False)
        out: Tensor = self.fuse(torch.cat([context, self.low_project(low)], dim=1))
        return out
