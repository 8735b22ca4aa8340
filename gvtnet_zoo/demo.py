"""``gvtnet-zoo demo``: the whole tool on real microscopy in a few minutes on 2 CPU cores.

1. checks the paper's models against their published parameter counts;
2. prepares 2D label-free pairs from ndev-sampledata (transmitted light -> Hoechst; time points 0-7 train,
   8-9 test);
3. trains the demo-size GVTNet and the U-Net baseline with the same budget;
4. packages both for the BioImage Model Zoo (the zoo's own tests run on every weight format);
5. predicts the test images with both packages through bioimageio.core;
6. evaluates both against the fluorescence (CARE protocol, paired one-tailed t-tests) and draws
   transmitted light | U-Net | GVTNet | fluorescence.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .atomic import write_text_atomically
from .data.samples import CREDITS, prepare_label_free_2d
from .evaluate.metrics import METRICS
from .evaluate.report import evaluate
from .export.package import package_run
from .figures import save_panels
from .image_io.images import read_image
from .models import build_model, count_parameters
from .models.reference import PAPER_MODELS
from .predict.run import predict_files
from .spec_loading import load_spec
from .train.trainer import train

MODELS = {"GVTNet": "demo-gvtnet-label-free-2d", "U-Net": "demo-unet-label-free-2d"}


def _check_paper_models(echo: Callable[[str], None]) -> list[str]:
    lines = ["## The paper's models", "", "| spec | trainable parameters | paper | match |", "|---|---:|---:|---|"]
    for name, reference in PAPER_MODELS.items():
        count = count_parameters(build_model(load_spec(name)))
        match = "yes" if count == reference.parameters else "NO"
        echo(f"  {name:28s} {count:>12,}  paper {reference.parameters:>12,}  {match}")
        lines.append(f"| {name} | {count:,} | {reference.parameters:,} | {match} |")
    return lines


def _figure(path: Path, data: Path, predictions: dict[str, Path], image: str) -> None:
    panels = [("transmitted light", read_image(data / "test" / "source" / image), "gray")]
    panels += [(name, read_image(folder / image), "magma") for name, folder in predictions.items()]
    panels.append(("Hoechst fluorescence", read_image(data / "test" / "target" / image), "magma"))
    save_panels(path, panels, vertical=True, panel_size=(9.0, 2.3), dpi=90)


def run_demo(out_dir: str | Path, steps: Optional[int] = None, echo: Callable[[str], None] = print) -> Path:
    """Run the demo into ``out_dir`` (overwriting its own earlier results); returns the summary file."""
    out = Path(out_dir)
    overrides = [f"train.steps={steps}"] if steps else []
    echo("1/6 the paper's models, counted and compared with the paper:")
    lines = ["# gvtnet-zoo demo", ""] + _check_paper_models(echo)
    echo("2/6 preparing 2D label-free pairs from ndev-sampledata (time points 0-7 train, 8-9 test)")
    data = prepare_label_free_2d(out / "data")
    packages, predictions = {}, {}
    for label, spec_name in MODELS.items():
        echo(f"3/6 training the {label} ({spec_name})")
        spec = load_spec(spec_name, overrides)
        run = train(spec, data / "train", out / "runs" / label.lower(), overwrite=True, device="auto",
                    command=f"gvtnet-zoo demo --out {out}")
        echo(f"4/6 packaging the {label}")
        packages[label] = package_run(run.root, out / f"{label.lower()}.zip", echo=echo, overwrite=True,
                                      description=f"{spec.description} Trained by gvtnet-zoo demo. {CREDITS}")
        echo(f"5/6 predicting the test images with the {label} package")
        predictions[label] = out / "predictions" / label.lower()
        predict_files(packages[label], [data / "test" / "source"], predictions[label], overwrite=True, echo=echo)
    echo("6/6 evaluating GVTNet against the U-Net baseline (CARE protocol)")
    results = evaluate(predictions["GVTNet"], data / "test" / "target", out / "metrics.csv",
                       baseline=predictions["U-Net"], plot=out / "metrics.png", overwrite=True, echo=echo)
    first = sorted(results)[0] + ".tif"
    _figure(out / "comparison.png", data, {"U-Net": predictions["U-Net"], "GVTNet": predictions["GVTNet"]}, first)
    with (out / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    mean = lambda column: np.mean([float(r[column]) for r in rows])  # noqa: E731
    lines += ["", "## Label-free prediction on real data", "", CREDITS, "",
              f"Both models trained {load_spec(MODELS['GVTNet'], overrides).train.steps} steps on time points 0-7, "
              "scored on 8-9 against the Hoechst channel (CARE protocol; p-values in metrics.png).", "",
              "| metric (mean over test images) | GVTNet | U-Net |", "|---|---:|---:|"]
    lines += [f"| {m} | {mean(m):.4f} | {mean('baseline_' + m):.4f} |" for m in METRICS]
    lines += ["", "Where things are:", "",
              f"- packages: {packages['GVTNet'].name}, {packages['U-Net'].name} (tested by bioimageio.core)",
              "- runs (checkpoints, curves, samples): runs/gvtnet, runs/unet",
              "- predictions: predictions/gvtnet, predictions/unet; per-image metrics with the U-Net as baseline: "
              "metrics.csv, box plots with p-values: metrics.png",
              "- transmitted light | U-Net | GVTNet | fluorescence: comparison.png", ""]
    summary = out / "demo.md"
    write_text_atomically(summary, "\n".join(lines))
    echo(f"done: summary in {summary}, figure in {out / 'comparison.png'}")
    return summary
