"""The models trained on real steel (models/neu-seg, models/magnetic-tile) on their own
validation images from ../shared (or $DEFECTD_SHARED), when both are present.

A slice of each model's validation list (`validation.txt` beside the model, the images it
never trained on) is scored with `defectd evaluate`; the floors catch a broken model, export
or inference path — the figures of the whole split are in each model card and docs/model.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main
from tests.engines.datasets.helpers import REPO, SHARED

CASES = {
    # model folder: (data folder, spec or None, network mIoU-with-background floor)
    "neu-seg": ("neu-seg", REPO / "training" / "specs" / "neu-seg.yaml", 0.65),
    "magnetic-tile": ("magnetic-tile", None, 0.2),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_real_model_scores_its_validation_images(name: str, tmp_path: Path) -> None:
    data_name, spec, floor = CASES[name]
    model, data = REPO / "models" / name, SHARED / data_name
    if not (model / "model_card.json").is_file():
        pytest.skip(f"{model} is not trained yet (make model-{name})")
    if not data.is_dir():
        pytest.skip(f"{data} is absent: the real data set is not beside the checkout")
    ids = (model / "validation.txt").read_text(encoding="utf-8").split()
    subset = tmp_path / "ids.txt"
    subset.write_text("\n".join(ids[::8]), encoding="utf-8")  # every 8th: ~70 / ~20 images
    report = tmp_path / "eval.json"
    args = ["evaluate", "--model", str(model), "--data", str(data), "--split", str(subset),
            "--no-progress", "--threads", "2", "--json", str(report)]  # fmt: skip
    if spec is not None:
        args += ["--spec", str(spec)]
    assert main(args) == 0
    result = json.loads(report.read_text(encoding="utf-8"))
    assert result["images"] == len(ids[::8])
    assert result["network"]["miou_with_background"] >= floor
