"""The package's README model card, filled in from the run."""

from __future__ import annotations

import csv
import string
from pathlib import Path
from typing import Any

import yaml

from ..config import Spec
from ..resources import resource_dir

TASKS = {
    "denoising": "content-aware image denoising",
    "label-free-prediction": "label-free prediction of fluorescence from transmitted-light images",
    "surface-projection": "3D-to-2D surface projection",
}


def task_of(spec: Spec) -> str:
    """denoising, label-free-prediction or surface-projection, from the architecture and head."""
    if spec.model.architecture == "gvtnet_projection":
        return "surface-projection"
    return "denoising" if getattr(spec.model, "residual_output", False) else "label-free-prediction"


def validation_table(metrics_csv: Path) -> str:
    """Markdown table of the last and the best (lowest loss) validation of the run."""
    rows = [r for r in csv.DictReader(metrics_csv.open())] if metrics_csv.exists() else []
    rows = [r for r in rows if r.get("val_loss")]
    if not rows:
        return "No validation was recorded for this run."
    best = min(rows, key=lambda r: float(r["val_loss"]))
    lines = ["| | step | loss | NRMSE | Pearson r |", "|---|---:|---:|---:|---:|"]
    for label, row in (("last", rows[-1]), ("best (packaged by default)", best)):
        lines.append(f"| {label} | {row['step']} | {float(row['val_loss']):.4g} | {float(row['val_nrmse']):.4f} | "
                     f"{float(row['val_pearson_r']):.4f} |")
    return "\n".join(lines)


def citations() -> list[dict[str, str]]:
    """What every package cites (packaging/citations.yaml): entries with ``text`` and ``doi``."""
    return yaml.safe_load((resource_dir("packaging") / "citations.yaml").read_text())


def render_model_card(values: dict[str, Any]) -> str:
    """The template with every $field replaced; a missing field is an error, not a blank."""
    return string.Template((resource_dir("packaging") / "model_card.md").read_text()).substitute(values)
