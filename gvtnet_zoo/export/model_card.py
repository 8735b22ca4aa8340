"""The package's README model card, filled in from the run: who trained the network, on what, and how it was
validated (a run of ``train``, or the authors' network brought in by ``import-tf``)."""

from __future__ import annotations

import csv
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import __version__
from ..config import Spec
from ..errors import UserError
from ..resources import resource_dir
from ..train.validation import best_validation

TASKS = {
    "denoising": "content-aware image denoising",
    "label-free-prediction": "label-free prediction of fluorescence from transmitted-light images",
    "surface-projection": "3D-to-2D surface projection",
}
PAPER = "Wang, Xie & Ji 2021"
# where the paper (Nature Machine Intelligence 3, 161-171) reports each task's test results, and on what
PAPER_RESULTS = {
    "label-free-prediction": ("Fig. 2", "on the structure's test images"),
    "denoising": ("Fig. 3", "on the test volumes of its three noise conditions"),
    "surface-projection": ("Fig. 4", "on the test stacks of its three conditions"),
}
# the 13 structures of the published label-free checkpoints (save_dir/label-free/STRUCTURE/ of divelab/GVTNets)
LABEL_FREE_STRUCTURES = ("alpha_tubulin", "beta_actin", "desmoplakin", "dic_lamin_b1", "dna", "fibrillarin", "lamin_b1",
                         "membrane_caax_63x", "myosin_iib", "sec61_beta", "st6gal1", "tom20", "zo1")
TRAINED_LIMITATIONS = ("Trained on the data described above only: expect it to fail on other microscopes, stains, "
                       "magnifications or noise levels without retraining. A restored image is a prediction, not a "
                       "measurement; check it against real acquisitions before drawing conclusions.")


def task_of(spec: Spec) -> str:
    """denoising, label-free-prediction or surface-projection, from the architecture and head."""
    if spec.model.architecture == "gvtnet_projection":
        return "surface-projection"
    return "denoising" if getattr(spec.model, "residual_output", False) else "label-free-prediction"


def smallest_input(step: Sequence[int], halo: Mapping[str, int]) -> list[int]:
    """The smallest input a package takes, per space axis: z one step (z declares no halo), y and x one step plus
    twice the halo (the package's declared minimum)."""
    axes = "zyx"[3 - len(step):]
    return [s + (2 * halo[a] if a in "yx" else 0) for a, s in zip(axes, step)]


def size_text(step: Sequence[int], halo: Mapping[str, int]) -> str:
    """'at least 4 x 52 x 52 (z, y, x; y and x: one step plus twice the halo)', for a --sample image."""
    axes = ", ".join("zyx"[3 - len(step):])
    return (f"at least {' x '.join(map(str, smallest_input(step, halo)))} ({axes}; y and x: one step plus twice "
            "the halo)")


def refuse_small_sample(path: str | Path, shape: Sequence[int], step: Sequence[int], halo: Mapping[str, int]) -> None:
    """UserError, naming the smallest size, for a --sample image smaller than the package takes."""
    if any(size < least for size, least in zip(shape, smallest_input(step, halo))):
        raise UserError(f"the sample {path} is {' x '.join(map(str, shape))}; the package needs {size_text(step, halo)}: "
                        "give a larger --sample, e.g. an image of the task's test data")


def _named(spec: Spec) -> str:
    """What tells an imported network's data: its name and the checkpoint's path (not the digests after it)."""
    where = spec.provenance.imported_from.split(" (")[0] if spec.provenance else ""
    return f"{spec.name} {where}".lower().replace("-", "_")


def paper_data(spec: Spec) -> str:
    """The paper's training data of an imported network, as far as its name and checkpoint path tell."""
    task, named = task_of(spec), _named(spec)
    if task == "label-free-prediction":
        found = [s for s in sorted(LABEL_FREE_STRUCTURES, key=len, reverse=True)
                 if re.search(rf"(?<![a-z0-9]){s}(?![a-z0-9])", named)]
        which = (f"the fluorescence of structure `{found[0]}`" if found else
                 "the fluorescence of one of its 13 structures (the name does not say which)")
        return (f"the Allen Institute for Cell Science's label-free data (3D transmitted-light images and {which}; "
                "Ounkomol et al. 2018)")
    if task == "surface-projection":
        return "CARE's Flywing (Drosophila wing epithelium) surface-projection data (Weigert et al. 2018)"
    found = [n for n in ("planaria", "tribolium") if n in named]
    organism = {"planaria": "Planaria (Schmidtea mediterranea)", "tribolium": "Tribolium castaneum"}
    which = organism[found[0]] if len(found) == 1 else "Planaria or Tribolium (the name does not say which)"
    return f"CARE's {which} denoising data (Weigert et al. 2018)"


def validation_table(metrics_csv: Path, best_by: str = "loss") -> str:
    """Markdown table of the last validation of the run and the best by ``best_by`` (train.best_by: best.pt's)."""
    rows = [r for r in csv.DictReader(metrics_csv.open())] if metrics_csv.exists() else []
    best = best_validation(rows, best_by)
    if best is None:
        return "No validation was recorded for this run."
    last = [r for r in rows if r.get("val_loss")][-1]
    rule = {"loss": "lowest loss", "nrmse": "lowest NRMSE", "pearson_r": "highest Pearson r"}[best_by]
    lines = ["| | step | loss | NRMSE | Pearson r |", "|---|---:|---:|---:|---:|"]
    for label, row in (("last (last.pt)", last), (f"best: {rule} (best.pt)", best)):
        lines.append(f"| {label} | {row['step']} | {float(row['val_loss']):.4g} | {float(row['val_nrmse']):.4f} | "
                     f"{float(row['val_pearson_r']):.4f} |")
    return "\n".join(lines)


def origin_texts(spec: Spec, metrics_csv: Path) -> dict[str, str]:
    """The card's fields that depend on who trained the network: trained_by, made_with, data_text,
    validation_text and limitations."""
    provenance, data = spec.provenance, spec.data
    if provenance and provenance.imported_from:
        return _imported_texts(spec)
    validation_data = ((f"the run's {provenance.val_images} held-out image(s) of {provenance.data}" if provenance
                        else "the run's held-out images") + f" (loss on {data.val_patches} patches of them, NRMSE "
                       f"and Pearson r on up to {spec.train.val_max_images} whole images)")
    return {
        "trained_by": "trained with gvtnet-zoo",
        "made_with": f"gvtnet-zoo {__version__}, PyTorch {torch.__version__}",
        "data_text": (f"{provenance.data}: {provenance.train_images} training and {provenance.val_images} held-out "
                      "images." if provenance else "Not recorded."),
        "validation_text": (f"Validated on {validation_data} (CARE protocol: ground truth normalized by its 0.1/99.9 "
                            "percentiles,\nprediction scaled by least squares; Pearson r on the raw values). From "
                            f"`metrics.csv`, attached:\n\n{validation_table(metrics_csv, spec.train.best_by)}"),
        "limitations": TRAINED_LIMITATIONS,
    }


def _imported_texts(spec: Spec) -> dict[str, str]:
    """An ``import-tf`` run: the GVTNets authors' network; the paper, not gvtnet-zoo, reports its test metrics."""
    data = paper_data(spec)
    figure, tested_on = PAPER_RESULTS[task_of(spec)]
    return {
        "trained_by": f"trained by the GVTNets authors ({PAPER}) and converted to PyTorch by gvtnet-zoo,",
        "made_with": f"the original GVTNets TensorFlow code; converted by gvtnet-zoo {__version__}, PyTorch {torch.__version__}",
        "data_text": (f"Trained by the GVTNets authors with their code on {data}; imported with `gvtnet-zoo import-tf` "
                      f"from {spec.provenance.imported_from}. The settings below are the recipe of the original "
                      "training scripts, as the spec records them."),
        "validation_text": (f"No validation was run by gvtnet-zoo: these are the authors' weights, unchanged. The paper "
                            f"reports this network's test metrics, {tested_on}, in {PAPER}, {figure} (Nature Machine "
                            "Intelligence 3, 161-171, doi:10.1038/s42256-020-00283-x). gvtnet-zoo "
                            "checked that every variable of the checkpoint has the converted network's name and shape, "
                            "and its tests check that the conversion computes the original TensorFlow code's function "
                            "(within 1e-5 of its output range); `tools/reproduce_paper.py` in gvtnet-zoo's repository "
                            "reruns the paper's test protocol with this package."),
        "limitations": (f"Trained by the GVTNets authors on {data} only: expect it to fail on other microscopes, stains, "
                        "magnifications or noise levels without retraining, and validate it on your own data before "
                        "use (gvtnet-zoo ran no validation). A restored image is a prediction, not a measurement; check "
                        "it against real acquisitions before drawing conclusions."),
    }


def citations() -> list[dict[str, str]]:
    """What every package cites (packaging/citations.yaml): entries with ``text`` and ``doi``."""
    return yaml.safe_load((resource_dir("packaging") / "citations.yaml").read_text())


def render_model_card(values: dict[str, Any]) -> str:
    """The template with every $field replaced; a missing field is an error, not a blank."""
    return string.Template((resource_dir("packaging") / "model_card.md").read_text()).substitute(values)
