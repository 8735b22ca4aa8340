"""``gvtnet-zoo demo``: the shipped specs, checked and run once.

Builds every paper model and checks its parameter count against the paper, then runs each
demo-size model forward on a synthetic input. The end-to-end demo on real data (train, package,
predict, evaluate) replaces this with the evaluation issue.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from .atomic import write_text_atomically
from .models import build_model, count_parameters
from .models.reference import PAPER_MODELS
from .spec_loading import bundled_spec_names, load_spec

STILL_TO_COME = (
    "Still to come (not in this version): this demo training, packaging, predicting and evaluating on real "
    "microscopy data. Available now: gvtnet-zoo synth, train, package, test, predict and evaluate (see the README)."
)


def run_demo(out_dir: Path, echo: Callable[[str], None] = print) -> Path:
    """Build the paper's models and run the demo models once; returns the report written to ``out_dir``."""
    lines = ["# gvtnet-zoo demo", "", "## The paper's models", "",
             "| spec | trainable parameters | paper | match |", "|---|---:|---:|---|"]
    echo("The paper's models (built from model_specs/, counted, compared with the paper):")
    for name, reference in PAPER_MODELS.items():
        count = count_parameters(build_model(load_spec(name)))
        match = "yes" if count == reference.parameters else "NO"
        echo(f"  {name:28s} {count:>12,}  paper {reference.parameters:>12,}  {match}  ({reference.source})")
        lines.append(f"| {name} | {count:,} | {reference.parameters:,} | {match} |")
    lines += ["", "## Demo-size models (one forward pass on a synthetic patch, CPU)", "",
              "| spec | trainable parameters | input | output | seconds |", "|---|---:|---|---|---:|"]
    echo("Demo-size models, one forward pass on a synthetic patch:")
    torch.manual_seed(0)
    for name in (n for n in bundled_spec_names() if n.startswith("demo-")):
        spec = load_spec(name)
        model = build_model(spec).eval()
        x = torch.rand(1, 1, *spec.data.patch_size)
        start = time.perf_counter()
        with torch.no_grad():
            y = model(x)
        seconds = time.perf_counter() - start
        shapes = "x".join(map(str, x.shape)), "x".join(map(str, y.shape))
        echo(f"  {name:28s} {count_parameters(model):>12,}  {shapes[0]} -> {shapes[1]}  {seconds:.2f} s")
        lines.append(f"| {name} | {count_parameters(model):,} | {shapes[0]} | {shapes[1]} | {seconds:.2f} |")
    lines += ["", STILL_TO_COME, ""]
    report = out_dir / "demo.md"
    write_text_atomically(report, "\n".join(lines))
    echo(STILL_TO_COME)
    echo(f"Report: {report}")
    return report
