"""`defectd shadow report` on a real shadow store: the table, the JSON, the picture, errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from defectd.daemon.cli import main
from defectd.daemon.shadow.report_picture import PICTURE_WIDTH
from tests.daemon.shadow.helpers import fill


@pytest.fixture
def shadow_dir(tmp_path: Path) -> Path:
    """One run whose shadow model misses class 2 on three of four frames."""
    fill(tmp_path / "shadow", scale=10)
    return tmp_path / "shadow"


def test_report_prints_the_table_and_writes_the_picture(
    shadow_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["shadow", "report", "--dir", str(shadow_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("shadow run 1 on line1: live model unet-v7 vs shadow model unet-v8")
    assert "4 frames compared" in out
    assert "class 2 scratches: the shadow model disagrees: Dice 0.40 < 0.90" in out
    picture = shadow_dir / "shadow-report.png"
    assert out.rstrip().endswith(f"picture: {picture}")
    image = cv2.imread(str(picture))
    assert image is not None and image.shape[1] == PICTURE_WIDTH


def test_report_json_and_out(
    shadow_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "reports" / "candidate.png"
    argv = ["shadow", "report", "--dir", str(shadow_dir), "--run", "1", "--json", "--out", str(png)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)  # stdout is JSON alone
    assert document["run_id"] == 1 and document["frames"] == 4
    assert [c["dice"] for c in document["classes"]][1:] == [pytest.approx(0.4), 0.0, None]
    assert f"picture: {png}" in captured.err
    assert png.stat().st_size > 10_000 and not (shadow_dir / "shadow-report.png").exists()


def test_errors_name_the_fix(
    shadow_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["shadow", "report", "--dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"defectd shadow: error: {tmp_path / 'none'}: no shadow.db here")
    assert err.endswith("name it with --dir")
    assert main(["shadow", "report", "--dir", str(shadow_dir), "--run", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"no shadow run 9 in {shadow_dir}; its runs are 1: name one with --run" in err
    with pytest.raises(SystemExit):
        main(["shadow", "report"])  # --dir is required
