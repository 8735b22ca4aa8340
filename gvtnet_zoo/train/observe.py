"""What the user sees of a run: progress bar, metrics.csv, TensorBoard, curves and sample images."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_path
from ..figures import plane, plane_text, pyplot, save_figure, save_panels, scaling_text
from .run_dir import RunDir

COLUMNS = ("step", "train_loss", "lr", "val_loss", "val_nrmse", "val_pearson_r", "elapsed_s")


@dataclass(frozen=True)
class TrainingEvent:
    """What a watcher of a run (the napari train widget) hears: one of a logged training loss, a validation's
    metrics, or a checkpoint's sample (input, prediction, target: the first validation image, normalized)."""

    step: int
    total_steps: int
    train_loss: Optional[float] = None
    validation: Optional[dict[str, float]] = None
    sample: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None


Observer = Callable[[TrainingEvent], None]


def _kept_rows(path: Path, up_to_step: int) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["step"]) <= up_to_step]


class RunLog:
    """Logs of the main process; every method is a no-op on other ranks (``enabled`` False)."""

    def __init__(self, run: RunDir, total_steps: int, start_step: int, enabled: bool,
                 observer: Optional[Observer] = None) -> None:
        self.run, self.enabled, self.total_steps = run, enabled, total_steps
        self.observer = observer if enabled else None
        self.start = time.perf_counter()
        self.bar: Optional[tqdm] = None
        self.writer = None
        if not enabled:
            return
        rows = _kept_rows(run.metrics, start_step)  # a resumed run drops rows past its checkpoint
        with atomic_path(run.metrics) as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(run.tensorboard), purge_step=start_step + 1)
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    def _append(self, **values: float) -> None:
        row = {k: values.get(k, "") for k in COLUMNS}
        with self.run.metrics.open("a", newline="") as handle:
            csv.DictWriter(handle, COLUMNS).writerow(row)

    def step(self) -> None:
        """One more step done (the bar shows steps/s)."""
        if self.bar is not None:
            self.bar.update(1)

    def train_loss(self, step: int, loss: float, lr: float) -> None:
        """The mean training loss since the last call."""
        if not self.enabled:
            return
        assert self.bar is not None
        self.bar.set_postfix(loss=f"{loss:.4g}", lr=f"{lr:.2g}")
        self._append(step=step, train_loss=loss, lr=lr, elapsed_s=round(time.perf_counter() - self.start, 2))
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)
        if self.observer:
            self.observer(TrainingEvent(step, self.total_steps, train_loss=loss))

    def validation(self, step: int, metrics: dict[str, float], input_nrmse: Optional[float]) -> None:
        if not self.enabled:
            return
        self._append(step=step, elapsed_s=round(time.perf_counter() - self.start, 2),
                     **{f"val_{k}": v for k, v in metrics.items()})
        for key, value in metrics.items():
            self.writer.add_scalar(f"val/{key}", value, step)
        baseline = f" (input {input_nrmse:.4f})" if input_nrmse is not None else ""
        assert self.bar is not None
        self.bar.write(f"step {step}: val loss {metrics['loss']:.4g}, NRMSE {metrics['nrmse']:.4f}{baseline}, "
                       f"Pearson r {metrics['pearson_r']:.4f}")
        plot_curves(self.run.metrics, self.run.curves)
        if self.observer:
            self.observer(TrainingEvent(step, self.total_steps, validation=dict(metrics)))

    def sample(self, step: int, source: np.ndarray, prediction: np.ndarray, target: np.ndarray,
               title: str) -> None:
        """A checkpoint's sample prediction: samples/step_N.png, and the observer hears the arrays."""
        save_sample(self.run.samples / f"step_{step:07d}.png", source, prediction, target, title)
        if self.observer:
            self.observer(TrainingEvent(step, self.total_steps, sample=(source, prediction, target)))

    def message(self, text: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar else print)(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _series(rows: list[dict[str, str]], key: str) -> tuple[list[int], list[float]]:
    points = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
    return [p[0] for p in points], [p[1] for p in points]


def plot_curves(metrics_csv: Path, png: Path) -> None:
    """Training and validation loss, validation NRMSE and Pearson r over steps."""
    plt = pyplot()
    rows = _kept_rows(metrics_csv, 2**62)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, label in (("train_loss", "training"), ("val_loss", "validation")):
        axes[0].plot(*_series(rows, key), label=label, marker="o" if key == "val_loss" else None, markersize=3)
    axes[0].set(title="loss", xlabel="step")
    axes[0].legend()
    axes[1].plot(*_series(rows, "val_nrmse"), marker="o", markersize=3, color="tab:red")
    axes[1].set(title="validation NRMSE (lower is better)", xlabel="step")
    axes[2].plot(*_series(rows, "val_pearson_r"), marker="o", markersize=3, color="tab:green")
    axes[2].set(title="validation Pearson r", xlabel="step")
    fig.tight_layout()
    save_figure(fig, png, 90)


def sample_title(title: str, source: np.ndarray, target: np.ndarray) -> str:
    """The sample figure's title: ``title``, then which z plane the panels show and how they are scaled."""
    projecting = source.ndim != target.ndim
    where = (f"input: {plane_text(source.shape, True)}; prediction and target 2D" if projecting
             else plane_text(target.shape))
    return f"{title}\n" + "; ".join(part for part in (where, scaling_text()) if part)


def save_sample(png: Path, source: np.ndarray, prediction: np.ndarray, target: np.ndarray, title: str) -> None:
    """input | prediction | target side by side; 3D shows the middle z slice (max projection for a 3D->2D input),
    titled by ``sample_title``."""
    projecting = source.ndim != target.ndim
    save_panels(png, [("input" + (" (max over z)" if projecting else ""), plane(source, projecting), "magma"),
                      ("prediction", plane(prediction), "magma"), ("target", plane(target), "magma")],
                panel_size=(4.0, 4.4), dpi=80, title=sample_title(title, source, target))
