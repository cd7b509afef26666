"""`defectd coils list / show / report` against a real SQLite store the tracker filled."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from defectd.daemon.cli import main
from tests.daemon.coils.helpers import fill_store


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """Two coils of one camera: C1 with a scratch over two frames and lost frames, C2 clean."""
    return fill_store(tmp_path / "state")


def test_list_show_and_report(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["coils", "list", "--store", store_url]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("coil ") and len(listed) == 3
    assert listed[1].split()[0] == "C2" and listed[2].split()[0] == "C1"  # newest first
    assert listed[2].split()[-1] == "B" and listed[1].split()[-1] == "A"
    assert main(["coils", "list", "--store", store_url, "--grade", "B"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["C1"]
    assert main(["coils", "show", "C1", "--store", store_url]) == 0
    shown = capsys.readouterr().out
    assert "coil C1 on line1: grade B" in shown and "because c1 count 4 > 1 → B" in shown
    assert "coverage gaps: 0.20 m not inspected (1 gaps)" in shown
    assert "top: 0.80–1.00 m, 2 frames missing" in shown
    assert "c1" in shown and "2 frame(s)" in shown  # the scratch over frames 4 and 5
    out = tmp_path / "report"
    assert main(["coils", "report", "C1", "--store", store_url, "--out", str(out)]) == 0
    assert (out / "map.png").stat().st_size > 10_000
    rows = list(csv.DictReader((out / "defects.csv").open(encoding="utf-8")))
    assert len(rows) == 4
    document = json.loads((out / "coil.json").read_text(encoding="utf-8"))
    assert document["coil"]["grade"] == "B" and len(document["gaps"]) == 1
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "0.2 m not inspected" in report and "crops/" in report
    assert list((out / "crops").iterdir())  # thumbnails of the largest defects


def test_errors_name_the_fix(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["coils", "show", "NOPE", "--store", store_url]) == 2
    assert "no closed coil 'NOPE' in the store: `defectd coils list`" in capsys.readouterr().err
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["coils", "list", "--store", missing]) == 2
    assert "the daemon writes one when store.enabled is true" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["coils", "list", "--since", "yesterday-ish"])
