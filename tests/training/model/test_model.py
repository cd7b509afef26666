"""DeepLabV3+ wiring: one shared tester, each encoder variant a few attributes on a subclass."""

from __future__ import annotations

import re
from typing import ClassVar

import pytest

torch = pytest.importorskip("torch", reason="the model needs defectd[train] (torch)")

from defectd.training.model import DeepLabV3Plus, ModelConfig, build_model  # noqa: E402
from defectd.training.model.decoder import ASPP, atrous_rates  # noqa: E402


class ModelTester:
    """Shared checks; subclasses set the architecture (narrow, so the suite stays fast)."""

    encoder: ClassVar[str] = "resnet18"
    encoder_width: ClassVar[float] = 0.25
    output_stride: ClassVar[int] = 16
    decoder_channels: ClassVar[int] = 32
    num_classes: ClassVar[int] = 4

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls) -> DeepLabV3Plus:
        torch.manual_seed(0)
        return build_model(cls.config())

    @classmethod
    def config(cls) -> ModelConfig:
        return ModelConfig(
            encoder=cls.encoder,
            encoder_width=cls.encoder_width,
            output_stride=cls.output_stride,
            decoder_channels=cls.decoder_channels,
            num_classes=cls.num_classes,
        )

    def test_output_shapes(self, model: DeepLabV3Plus) -> None:
        model.eval()
        with torch.no_grad():
            masks, presence = model(torch.randn(2, 1, 64, 128))
        assert masks.shape == (2, self.num_classes, 64, 128)
        assert presence.shape == (2, self.num_classes)
        assert masks.dtype == presence.dtype == torch.float32

    def test_output_is_named(self, model: DeepLabV3Plus) -> None:
        model.eval()
        with torch.no_grad():
            out = model(torch.randn(1, 1, 32, 64))
        assert out.masks is out[0] and out.presence is out[1]

    def test_gradient_reaches_every_parameter(self, model: DeepLabV3Plus) -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        masks, presence = model(torch.randn(2, 1, 64, 128))
        (masks.mean() + presence.mean()).backward()
        missing = [name for name, p in model.named_parameters() if p.grad is None]
        assert missing == []
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    def test_deep_features_at_output_stride(self, model: DeepLabV3Plus) -> None:
        model.eval()
        with torch.no_grad():
            low, high = model.encoder(torch.randn(1, 1, 64, 128))
        assert low.shape[-2:] == (16, 32)
        assert high.shape[-2:] == (64 // self.output_stride, 128 // self.output_stride)

    def test_aspp_rates_follow_output_stride(self, model: DeepLabV3Plus) -> None:
        aspp = model.decoder.aspp
        assert isinstance(aspp, ASPP)
        rates = tuple(branch[0].dilation[0] for branch in list(aspp.branches)[1:4])
        assert rates == atrous_rates(self.output_stride)
        assert rates == ((6, 12, 18) if self.output_stride == 16 else (12, 24, 36))

    def test_check_input_names_expected_shape(self, model: DeepLabV3Plus) -> None:
        stride = self.output_stride
        expected = f"model expects N×1×H×W with H, W multiples of {stride}, got "
        odd = 4 * stride + stride // 2
        bad = {
            f"1×1×{odd}×128": torch.zeros(1, 1, odd, 128),
            f"1×1×64×{odd}": torch.zeros(1, 1, 64, odd),
            "1×3×64×128": torch.zeros(1, 3, 64, 128),
            "1×64×128": torch.zeros(1, 64, 128),
        }
        for shape, x in bad.items():
            with pytest.raises(ValueError, match=re.escape(expected + shape)):
                model.check_input(x)
        with pytest.raises(ValueError, match=r"normalised float tensor, got torch\.uint8"):
            model(torch.zeros(1, 1, 64, 128, dtype=torch.uint8))

    def test_predict_gives_probabilities(self, model: DeepLabV3Plus) -> None:
        model.train()
        masks, presence = model.predict(torch.randn(1, 1, 32, 64))
        assert not model.training
        for probabilities in (masks, presence):
            assert ((probabilities >= 0) & (probabilities <= 1)).all()


class TestResNet18(ModelTester):
    def test_full_frame(self, model: DeepLabV3Plus) -> None:
        model.eval()
        with torch.no_grad():
            masks, presence = model(torch.randn(1, 1, 256, 1600))
        assert masks.shape == (1, 4, 256, 1600)
        assert presence.shape == (1, 4)


class TestResNet18OutputStride8(ModelTester):
    output_stride = 8


class TestResNet34(ModelTester):
    encoder = "resnet34"
    encoder_width = 0.125


class TestResNet50(ModelTester):
    encoder = "resnet50"
    encoder_width = 0.125
    num_classes = 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"encoder": "resnet19"}, r"Wrong encoder name `resnet19`, supported encoders: \["),
        ({"output_stride": 32}, r"output_stride must be one of \[8, 16\], got 32"),
        ({"encoder_width": 0.0}, "encoder_width must be > 0"),
        ({"decoder_channels": 0}, "decoder_channels must be a positive integer"),
        ({"num_classes": 2.5}, "num_classes must be a positive integer"),
        ({"aspp_dropout": 1.0}, r"aspp_dropout must be in \[0, 1\)"),
        ({"presence_dropout": -0.1}, r"presence_dropout must be in \[0, 1\)"),
    ],
)
def test_config_rejects_bad_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)  # type: ignore[arg-type]


def test_default_config_is_full_resnet18() -> None:
    config = ModelConfig()
    assert (config.encoder, config.in_channels, config.num_classes) == ("resnet18", 1, 4)
    assert (config.output_stride, config.encoder_width, config.decoder_channels) == (16, 1.0, 256)
