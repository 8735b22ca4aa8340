"""The train widget's live plot: training and validation loss over steps (matplotlib in a Qt canvas)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure


class LossPlot:
    """Points added as they arrive; ``draw`` redraws (log scale once every loss is positive)."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(4, 2.6), tight_layout=True)
        self.axes = self.figure.add_subplot(111)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(200)
        self.series: dict[str, tuple[list[int], list[float]]] = {}
        self.draw()

    def load(self, metrics_csv: Optional[Path]) -> None:
        """Start over, with the losses a run's metrics.csv holds (None or a missing file: empty)."""
        self.series.clear()
        if metrics_csv is not None and metrics_csv.is_file():
            with metrics_csv.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    for column, label in (("train_loss", "training"), ("val_loss", "validation")):
                        if row.get(column):
                            self.add(label, int(row["step"]), float(row[column]))
        self.draw()

    def add(self, label: str, step: int, loss: float) -> None:
        steps, losses = self.series.setdefault(label, ([], []))
        steps.append(step)
        losses.append(loss)

    def draw(self) -> None:
        self.axes.clear()
        for label, (steps, losses) in self.series.items():
            self.axes.plot(steps, losses, label=label, marker="o" if label == "validation" else None, markersize=3)
        values = [v for _, losses in self.series.values() for v in losses]
        if values and min(values) > 0:
            self.axes.set_yscale("log")
        self.axes.set(xlabel="step", ylabel="loss")
        if self.series:
            self.axes.legend(loc="upper right")
        self.canvas.draw_idle()
