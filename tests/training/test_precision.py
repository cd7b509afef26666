"""--precision: what autocast each choice means on each device, and its checks."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training needs defectd[train] (torch)")

from defectd.training.config import TrainConfig, TrainError, autocast_dtype  # noqa: E402

CPU = torch.device("cpu")
CUDA = torch.device("cuda")


def test_auto_is_fp16_on_cuda_and_fp32_on_a_cpu() -> None:
    assert autocast_dtype("auto", CUDA) == torch.float16
    assert autocast_dtype("auto", CPU) is None
    assert autocast_dtype("fp32", CUDA) is None
    assert autocast_dtype("bf16", CUDA) == torch.bfloat16


def test_bf16_on_a_cpu_needs_bfloat16_instructions() -> None:
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert autocast_dtype("bf16", CPU) == torch.bfloat16
    else:
        with pytest.raises(TrainError, match="no bfloat16 instructions"):
            autocast_dtype("bf16", CPU)


def test_an_unknown_precision_is_refused_with_the_choices() -> None:
    with pytest.raises(TrainError, match="auto, fp32, bf16"):
        TrainConfig(data="d", out="o", precision="fp8")


def test_old_configs_without_a_precision_read_as_auto() -> None:
    values = TrainConfig(data="d", out="o").to_dict()
    del values["precision"]
    assert TrainConfig.from_dict(values).precision == "auto"
