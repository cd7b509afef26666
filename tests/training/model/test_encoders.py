"""ResNet encoders: torchvision-compatible names, ImageNet weight loading, output strides."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the model needs defectd[train] (torch)")

import torch.nn.functional as F  # noqa: E402

from defectd.training.model import ENCODERS, build_encoder, load_imagenet_weights  # noqa: E402

LAYERS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}


def _bn(shapes: dict[str, tuple[int, ...]], prefix: str, channels: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{prefix}.{name}"] = (channels,)
    shapes[f"{prefix}.num_batches_tracked"] = ()


def torchvision_shapes(name: str, in_channels: int = 3) -> dict[str, tuple[int, ...]]:
    """torchvision ResNet state-dict keys and shapes, written out from its layout."""
    bottleneck = name == "resnet50"
    expansion = 4 if bottleneck else 1
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, in_channels, 7, 7)}
    _bn(shapes, "bn1", 64)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(
        zip((64, 128, 256, 512), LAYERS[name], strict=True), start=1
    ):
        for index in range(blocks):
            prefix = f"layer{stage}.{index}"
            convs = (
                [(planes, inplanes, 1), (planes, planes, 3), (planes * 4, planes, 1)]
                if bottleneck
                else [(planes, inplanes, 3), (planes, planes, 3)]
            )
            for number, (out, inp, kernel) in enumerate(convs, start=1):
                shapes[f"{prefix}.conv{number}.weight"] = (out, inp, kernel, kernel)
                _bn(shapes, f"{prefix}.bn{number}", out)
            if index == 0 and (stage > 1 or inplanes != planes * expansion):
                shapes[f"{prefix}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                _bn(shapes, f"{prefix}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    shapes["fc.weight"] = (1000, 512 * expansion)
    shapes["fc.bias"] = (1000,)
    return shapes


def fake_checkpoint(
    path: Path, name: str, with_num_batches_tracked: bool = True
) -> dict[str, torch.Tensor]:
    """Random tensors under torchvision's names and shapes, saved like a downloaded .pth."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in torchvision_shapes(name).items():
        if key.endswith("num_batches_tracked"):
            if with_num_batches_tracked:
                state[key] = torch.tensor(7, dtype=torch.long)
        else:
            state[key] = torch.randn(shape, generator=generator)
    torch.save(state, path)
    return state


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_state_dict_matches_torchvision_names_and_shapes(name: str) -> None:
    encoder = build_encoder(name, in_channels=3)
    expected = {k: v for k, v in torchvision_shapes(name).items() if not k.startswith("fc.")}
    got = {key: tuple(value.shape) for key, value in encoder.state_dict().items()}
    assert got == expected


def test_resnet18_keys_by_hand() -> None:
    state = build_encoder("resnet18").state_dict()
    assert "layer4.1.bn2.running_var" in state
    assert "layer2.0.downsample.1.weight" in state
    assert "layer1.0.downsample.0.weight" not in state  # 64 → 64, no projection
    assert not any(key.startswith("fc.") for key in state)
    # torchvision resnet18: 122 entries, 62 parameters; less fc.weight and fc.bias.
    assert len(state) == 120
    encoder = build_encoder("resnet18", in_channels=3)
    assert len(list(encoder.parameters())) == 60
    assert sum(p.numel() for p in encoder.parameters()) == 11_689_512 - (512 * 1000 + 1000)


def test_bad_encoder_name_lists_supported() -> None:
    with pytest.raises(ValueError, match=r"Wrong encoder name `resnet19`") as error:
        build_encoder("resnet19")
    assert "['resnet18', 'resnet34', 'resnet50']" in str(error.value)


@pytest.mark.parametrize(("output_stride", "deep"), [(16, (4, 8)), (8, (8, 16))])
def test_output_stride_by_dilation(output_stride: int, deep: tuple[int, int]) -> None:
    encoder = build_encoder("resnet18", output_stride=output_stride, width=0.25).eval()
    with torch.no_grad():
        low, high = encoder(torch.randn(1, 1, 64, 128))
    assert low.shape == (1, 16, 16, 32)  # stride 4
    assert high.shape == (1, 128, *deep)
    dilations = {m.dilation for m in encoder.layer4.modules() if isinstance(m, torch.nn.Conv2d)}
    assert (4 if output_stride == 8 else 2, 4 if output_stride == 8 else 2) in dilations


def test_width_scales_every_stage() -> None:
    encoder = build_encoder("resnet50", width=0.5)
    assert encoder.conv1.out_channels == 32
    assert (encoder.low_channels, encoder.high_channels) == (128, 1024)


def test_bad_output_stride_and_width() -> None:
    with pytest.raises(ValueError, match=r"output_stride must be one of \[8, 16\], got 32"):
        build_encoder("resnet18", output_stride=32)
    with pytest.raises(ValueError, match="width must be > 0"):
        build_encoder("resnet18", width=0.0)


@pytest.mark.parametrize("with_num_batches_tracked", [True, False])
def test_grey_encoder_sums_rgb_conv1(tmp_path: Path, with_num_batches_tracked: bool) -> None:
    path = tmp_path / "resnet18-fake.pth"
    checkpoint = fake_checkpoint(path, "resnet18", with_num_batches_tracked)
    encoder = build_encoder("resnet18", in_channels=1)
    load_imagenet_weights(encoder, path)
    state = encoder.state_dict()

    rgb = checkpoint["conv1.weight"]
    torch.testing.assert_close(state["conv1.weight"], rgb.sum(dim=1, keepdim=True))
    # A grey frame gives the response the RGB filters give to that frame replicated 3×.
    grey = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(
        encoder.conv1(grey),
        F.conv2d(grey.repeat(1, 3, 1, 1), rgb, stride=2, padding=3),
        rtol=1e-4,
        atol=1e-4,  # sums of 147 unit-scale products, summed in another order
    )
    for key, value in state.items():
        if key == "conv1.weight":
            continue
        if key.endswith("num_batches_tracked") and not with_num_batches_tracked:
            continue
        assert torch.equal(value, checkpoint[key]), key


def test_rgb_encoder_loads_as_is(tmp_path: Path) -> None:
    path = tmp_path / "resnet18-fake.pth"
    checkpoint = fake_checkpoint(path, "resnet18")
    encoder = build_encoder("resnet18", in_channels=3)
    load_imagenet_weights(encoder, path)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, checkpoint[key]), key


def test_wrong_depth_names_keys(tmp_path: Path) -> None:
    path = tmp_path / "resnet34-fake.pth"
    fake_checkpoint(path, "resnet34")
    with pytest.raises(ValueError, match=r"unexpected keys \['layer1\.2\.bn1\.bias'"):
        load_imagenet_weights(build_encoder("resnet18"), path)
    with pytest.raises(ValueError, match=r"missing keys \['layer1\.0\.bn3\.bias'"):
        load_imagenet_weights(build_encoder("resnet50"), path)


def test_weights_only_fit_full_width(tmp_path: Path) -> None:
    path = tmp_path / "resnet18-fake.pth"
    fake_checkpoint(path, "resnet18")
    with pytest.raises(ValueError, match=r"only encoder width 1\.0, this encoder has width 0\.5"):
        load_imagenet_weights(build_encoder("resnet18", width=0.5), path)
