"""The wheel's layout: one `defectd` namespace, every package listed, models as package data."""

from __future__ import annotations

import tomllib
from pathlib import Path

from defectd.engines.model_card import CARD_NAME, bundled_model_dir, bundled_models

REPO = Path(__file__).resolve().parents[1]
PARTS = {"daemon": "defectd.daemon", "engines": "defectd.engines", "training": "defectd.training"}


def _pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_folder_with_an_init_is_a_listed_package() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]  # type: ignore[index]
    listed = set(setuptools["packages"])
    found = {"defectd.models"}
    for folder, name in PARTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *relative.parts]))
    assert listed == found, f"pyproject packages: missing {found - listed}, extra {listed - found}"


def test_everything_installs_under_defectd() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]  # type: ignore[index]
    assert all(name.startswith("defectd.") for name in setuptools["packages"])
    assert set(setuptools["package-dir"]) == {*PARTS.values(), "defectd.models"}


def test_the_bundled_models_are_found_as_package_data() -> None:
    assert "default" in bundled_models()
    directory = bundled_model_dir()
    assert (directory / CARD_NAME).is_file()
    # Every file a bundled model holds is matched by a package-data pattern, so the wheel
    # carries it (a new kind of file would otherwise be left out silently).
    setuptools = _pyproject()["tool"]["setuptools"]  # type: ignore[index]
    patterns = setuptools["package-data"]["defectd.models"]
    for name in bundled_models():
        for path in bundled_model_dir(name).iterdir():
            relative = Path(name) / path.name
            assert any(relative.match(pattern) for pattern in patterns), relative
