"""The README's demo figures, regenerated: run ``gvtnet-zoo demo`` in a fresh process, time it, and write
its numbers into the README between the ``demo-figures`` markers and into benchmarks/results/demo.md.

    python benchmarks/demo_figures.py [--work demo-figures-out] [--readme README.md]

The time is the demo's whole wall time (preparing the data, training, packaging with the zoo's tests,
predicting, evaluating) on this machine; the metrics are the means over the demo's two test images.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import as_it_falls, write_between  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- demo-figures: written by benchmarks/demo_figures.py -->", "<!-- /demo-figures -->"


def run_demo(work: Path) -> float:
    """Seconds the demo took, run as a user runs it (a new process, the installed command)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gvtnet_zoo", "demo", "--out", str(work)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def summary(work: Path, seconds: float) -> str:
    with (work / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    mean = lambda column: float(np.mean([float(r[column]) for r in rows]))  # noqa: E731
    steps = re.search(r"trained (\d+) steps", (work / "demo.md").read_text())
    return (as_it_falls("demo_figures.py") + f": the whole demo took {seconds:.0f} s; after "
            f"{steps.group(1) if steps else '?'} steps each the demo GVTNet and the U-Net reach Pearson r "
            f"{mean('pearson_r'):.2f} against {mean('baseline_pearson_r'):.2f} and SSIM {mean('ssim'):.2f} against "
            f"{mean('baseline_ssim'):.2f} on the {len(rows)} test images (two images decide nothing).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("demo-figures-out"))
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args()
    text = summary(args.work, run_demo(args.work))
    print(text)
    write_between(args.readme, START, END, text)
    (ROOT / "benchmarks" / "results" / "demo.md").write_text(f"# The demo, timed\n\n{text}\n")


if __name__ == "__main__":
    main()
