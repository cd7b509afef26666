"""The network on CUDA: FP32 matches the CPU, FP16 stays close to FP32 (skipped without CUDA)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the model needs defectd[train] (torch)")

from defectd.training.model import ModelConfig, build_model  # noqa: E402

pytestmark = pytest.mark.gpu


def test_cuda_fp32_matches_cpu_and_fp16_is_close() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder_width=0.5, decoder_channels=64)).eval()
    frames = torch.rand(2, 1, 256, 1600)
    cpu = model.predict(frames)
    model = model.cuda()
    fp32 = model.predict(frames.cuda())
    half = model.half().predict(frames.cuda().half())
    for name in ("masks", "presence"):
        reference = getattr(cpu, name)
        assert (getattr(fp32, name).cpu() - reference).abs().max().item() <= 1e-4, name
        assert (getattr(half, name).float().cpu() - reference).abs().max().item() <= 1e-2, name
