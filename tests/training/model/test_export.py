"""A narrow model exports to ONNX with a dynamic batch axis and ONNX Runtime agrees with torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the model needs defectd[train] (torch)")
pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")

import onnxruntime as ort  # noqa: E402

from defectd.training.model import ModelConfig, build_model  # noqa: E402


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.onnx")
def test_onnx_dynamic_batch_matches_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder_width=0.25, decoder_channels=32)).eval()
    path = tmp_path / "model.onnx"
    torch.onnx.export(
        model,
        (torch.randn(1, 1, 64, 128),),
        str(path),
        dynamo=False,  # the TorchScript exporter needs only onnx, not onnxscript
        opset_version=17,
        input_names=["image"],
        output_names=["masks", "presence"],
        dynamic_axes={"image": {0: "batch"}, "masks": {0: "batch"}, "presence": {0: "batch"}},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["masks", "presence"]

    for batch in (1, 3):
        x = torch.randn(batch, 1, 64, 128)
        with torch.no_grad():
            expected = model(x)
        masks, presence = session.run(None, {"image": x.numpy()})
        assert masks.shape == (batch, 4, 64, 128)
        assert presence.shape == (batch, 4)
        assert np.abs(masks - expected.masks.numpy()).max() <= 1e-4
        assert np.abs(presence - expected.presence.numpy()).max() <= 1e-4
