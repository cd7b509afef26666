"""The per-epoch record of a run: one `EpochRow` per epoch, as metrics.csv and curves.png."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class EpochRow:
    """One line of metrics.csv."""

    epoch: int
    steps: int
    lr: float
    train_loss: float
    train_bce: float
    train_dice_loss: float
    train_presence_loss: float
    val_loss: float
    val_dice: float
    val_dice_per_class: list[float]
    seconds: float

    def csv_row(self) -> dict[str, Any]:
        """The row for metrics.csv: the per-class Dice spread over val_dice_1, val_dice_2, …"""
        row = {k: v for k, v in asdict(self).items() if k != "val_dice_per_class"}
        for index, value in enumerate(self.val_dice_per_class, start=1):
            row[f"val_dice_{index}"] = value
        return row


def write_metrics(rows: list[EpochRow], path: Path) -> None:
    """metrics.csv from the history (rewritten whole, so a resumed run has one clean file)."""
    if not rows:
        return
    fields = list(rows[0].csv_row())
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row.csv_row())


def plot_curves(rows: list[EpochRow], path: Path, title: str) -> None:
    """curves.png: losses on the left, validation Kaggle Dice (mean and per class) right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    left.plot(epochs, [r.train_loss for r in rows], "o-", label="train loss")
    left.plot(epochs, [r.val_loss for r in rows], "o-", label="validation loss")
    left.set_xlabel("epoch")
    left.set_ylabel("loss (BCE + Dice + presence)")
    left.grid(alpha=0.3)
    left.legend()
    right.plot(epochs, [r.val_dice for r in rows], "o-", color="black", lw=2, label="mean")
    colours = ["tab:red", "tab:green", "tab:blue", "tab:purple"]
    for index in range(len(rows[0].val_dice_per_class)):
        right.plot(
            epochs,
            [r.val_dice_per_class[index] for r in rows],
            ".--",
            color=colours[index % len(colours)],
            label=f"class {index + 1}",
        )
    right.set_xlabel("epoch")
    right.set_ylabel("validation Kaggle Dice (thresholds 0.5, untuned)")
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.grid(alpha=0.3)
    right.legend(loc="lower right")
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
