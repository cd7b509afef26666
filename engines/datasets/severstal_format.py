"""The ``severstal`` format: `SeverstalDataset` (train.csv + train_images/) as a `Dataset`.

The reader in engines/severstal.py stays as it is; this adapter gives it the common interface
and turns what it keeps aside into problems: label rows whose image file is missing, images
of another size than the run-length codes are for, and (when dataset.yaml sets
``no_defect_rule: null``) images without rows.
"""

from __future__ import annotations

from pathlib import Path

from defectd.engines.datasets.base import Dataset, Truth
from defectd.engines.datasets.spec import DatasetSpec
from defectd.engines.severstal import SeverstalDataset


class SeverstalFormat(Dataset):
    """A Severstal-layout folder through the common `Dataset` interface."""

    def __init__(self, root: Path, spec: DatasetSpec) -> None:
        self.inner = SeverstalDataset(
            root,
            num_classes=spec.num_classes,
            labels_name=spec.masks_dir,
            images_name=spec.images_dir,
        )
        labels = root / spec.masks_dir
        problems = [
            f"{labels}: {image_id}: has label rows but no file in {self.inner.images_dir}"
            for image_id in self.inner.missing_images
        ]
        super().__init__(root, spec, list(self.inner.image_ids), problems)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) every image must have: the size the run-length codes number pixels in."""
        return self.inner.shape

    def image_path(self, image_id: str) -> Path:
        """The file of `image_id` in train_images/."""
        return self.inner.images_dir / image_id

    def load_truth(self, image_id: str, shape: tuple[int, int] | None) -> Truth:
        """The masks decoded from the image's rows (zeros when it has none)."""
        height, width = self.shape
        if shape is not None and shape != self.shape:
            return Truth(
                None,
                [
                    f"{self.image_path(image_id)}: image is {shape[1]}×{shape[0]}, but the "
                    f"run-length codes of {self.spec.masks_dir} are for {width}×{height}"
                ],
            )
        if image_id not in self.inner.labels.masks and self.spec.no_defect_rule is None:
            return Truth(None, [f"{self.image_path(image_id)}: no rows in {self.spec.masks_dir}"])
        return Truth(self.inner.load_masks(image_id))
