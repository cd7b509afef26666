"""Copies of a model directory for trying live changes: the same weights under another
version (a swap that must pass its golden check), or deliberately worse weights (a shadow
run that must show the difference, a swap that must fail its golden check).

Used by `defectd bench swap` and the live-change tests; never by the daemon itself.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from defectd.engines.model_card import ModelFile, read_card, sha256_of, write_card

GOLDEN_FILES = ("golden.json", "golden.npz")


def renamed_copy(source: Path, target: Path, version: str) -> Path:
    """`source` copied to `target` with the card's version set to `version`: same weights,
    same golden outputs, so a swap to it passes its golden check."""
    card = read_card(source)
    target.mkdir(parents=True, exist_ok=True)
    for entry in card.files.values():
        shutil.copy2(source / entry.path, target / entry.path)
    for name in GOLDEN_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
    write_card(replace(card, version=version, directory=None), target)
    return target


def degraded_copy(source: Path, target: Path, noise: float, seed: int = 0) -> Path:
    """`source`'s FP32 ONNX with Gaussian noise of `noise` × each weight tensor's standard
    deviation added to every float initializer, as version ``<version>-degraded``.

    Only the FP32 file is kept. The golden outputs are the source's, which the noisy
    weights no longer reproduce: a swap to it fails its golden check. Needs ``onnx``
    (defectd[int8] or defectd[train]).
    """
    import onnx
    from onnx import numpy_helper

    card = read_card(source)
    model = onnx.load(str(card.onnx_path("fp32")))
    rng = np.random.default_rng(seed)
    for initializer in model.graph.initializer:
        weights = numpy_helper.to_array(initializer)
        if weights.dtype.kind != "f" or weights.size < 2:
            continue
        spread = float(weights.std()) or 1.0
        noisy = weights + rng.normal(0.0, noise * spread, weights.shape).astype(weights.dtype)
        initializer.CopyFrom(numpy_helper.from_array(noisy, initializer.name))
    target.mkdir(parents=True, exist_ok=True)
    path = target / card.files["fp32"].path
    onnx.save(model, str(path))
    for name in GOLDEN_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
    files = {"fp32": ModelFile(card.files["fp32"].path, sha256_of(path))}
    write_card(
        replace(card, version=f"{card.version}-degraded", files=files, directory=None), target
    )
    return target
