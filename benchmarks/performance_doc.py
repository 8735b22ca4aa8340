"""Write docs/performance.md whole from the benchmark results, so that a rerun regenerates every number in it.

    python benchmarks/inference_modes.py --out benchmarks/results/inference_modes.md   # measures (fresh file)
    python benchmarks/performance_doc.py                                             # writes docs/performance.md

The document carries the tables of ``benchmarks/results/inference_modes.md`` and ``big_volume.md`` as
their scripts wrote them (command, machine and date included) and an index of the other results files by their titles; it
adds no number or reading of its own. Each results file says which script and command produced it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MAIN = "inference_modes.md"
STREAMED = "big_volume.md"  # benchmarks/big_volume.py: carried whole too, when it has been run


def _title(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return path.stem


def render(results: Path = RESULTS) -> str:
    """The document's text from the results folder."""
    main = results / MAIN
    if not main.is_file():
        raise SystemExit(f"{main} is missing; run benchmarks/inference_modes.py --out {main.relative_to(ROOT)} first")
    others = sorted(p for p in results.glob("*.md") if p.name not in (MAIN, STREAMED))
    streamed = results / STREAMED
    carried = [] if not streamed.is_file() else [
        "", *[("#" + line) if line.startswith("#") else line for line in streamed.read_text().rstrip("\n").splitlines()], "",
        "Streamed prediction (`gvtnet_zoo/predict/stream.py`) holds the model, a tile and its output per process; "
        "the volume and its prediction stay on disk (OME-Zarr).", ""]
    lines = ["# Performance: gvtnet-zoo against its baselines", "",
             "Written by `python benchmarks/performance_doc.py` from `benchmarks/results/`; do not edit by hand. "
             "Ratios come from rows measured side by side in one run; absolute times mean something only from a GPU.",
             "", *[("#" + line) if line.startswith("#") else line for line in main.read_text().rstrip("\n").splitlines()], "",
             "How the modes differ (`gvtnet_zoo/predict/global_context.py`): \"tiled\" runs every tile through the whole "
             "network, each GVTO attending to its own tile; \"global\" first runs, per GVTO, the tiles up to that GVTO "
             "and sums their keys and values, then runs every tile with each GVTO computing only its queries (its keys "
             "and values are in the summed context), so its final pass allocates less per tile than a plain tile does. "
             "Rows before 2026-12-05 ran every pass from the input; since then (`predict/pass_reuse.py`) each pass of a "
             "tile starts where its last one stopped, and the budget rows plan their tiles from `--memory` "
             "(`predict/budget.py`). Since the second 2026-12-05 measurement an image in memory runs global context "
             "level by level (`predict/stagewise.py`: each segment of the forward over the whole image in tiles with "
             "its own halo, the feature maps later segments read stored whole, in memory or in scratch files), which "
             "is the budget-global row; budget-passes is the tile passes above under the same budget, as streamed and "
             "Dask prediction ran them before. Each section is dated: sections not re-measured keep their date and "
             "figures.",
             *carried, "",
             "## Other measurements", "",
             "Each file gives the command, machine and date of its measurement:", ""]
    lines += [f"- `benchmarks/results/{p.name}`: {_title(p)}" for p in others]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args()
    args.out.write_text(render())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
