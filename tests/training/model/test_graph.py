"""The uint8-in graphs: normalisation, grey into 3-channel models, output contract."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the model needs defectd[train] (torch)")

from defectd.training.model import ModelConfig, build_model  # noqa: E402
from defectd.training.model.graph import InferenceGraph, Normalise, TrainingGraph  # noqa: E402


def test_normalise_uses_the_0_to_1_statistics() -> None:
    norm = Normalise(mean=0.5, std=0.25)
    frames = torch.tensor([0, 255], dtype=torch.uint8)
    assert norm(frames).tolist() == pytest.approx([-2.0, 2.0], abs=0.01)
    with pytest.raises(ValueError, match="std must be > 0"):
        Normalise(0.5, 0.0)


@pytest.mark.parametrize("channels", [1, 3])
def test_grey_frames_feed_one_and_three_channel_models(channels: int) -> None:
    model = build_model(ModelConfig(in_channels=channels, encoder_width=0.125, decoder_channels=16))
    frames = torch.randint(0, 256, (2, 1, 64, 128), dtype=torch.uint8)
    logits = TrainingGraph(model, 0.4, 0.1)(frames)
    assert logits.masks.shape == (2, 4, 64, 128)
    with torch.no_grad():
        probs, presence, peak = InferenceGraph(model, 0.4, 0.1).eval()(frames)
    assert probs.shape == (2, 4, 64, 128) and presence.shape == peak.shape == (2, 4)
    assert torch.allclose(peak, probs.amax(dim=(2, 3)))
    assert float(probs.min()) >= 0.0 and float(probs.max()) <= 1.0
