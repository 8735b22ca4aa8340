"""Reproduce the GVTNets paper's test-set tables with gvtnet-zoo, from the authors' published checkpoints.

One command per paper result (ORIGINAL is a clone of github.com/divelab/GVTNets with its save_dir/ checkpoints;
DATA is the extracted CSBDeep data set, the folder holding test_data/, or test_data itself):

    python tools/reproduce_paper.py care --original ORIGINAL --data /path/Denoising_Planaria  --out results/planaria
    python tools/reproduce_paper.py care --original ORIGINAL --data /path/Denoising_Tribolium --out results/tribolium
    python tools/reproduce_paper.py flywing --original ORIGINAL --data /path/Projection_Flywing --out results/flywing
    python tools/reproduce_paper.py label-free --original ORIGINAL --out results/label-free [--data DIR]

Every model step goes through gvtnet-zoo's own command line (``gvtnet_zoo.cli.main``), exactly as a user would type it:

1. ``import-tf`` the published checkpoint ``ORIGINAL/save_dir/<task>/models/<name>_pretrained/model.ckpt-pretrained``
   (the path the original's scripts use with ``MODEL_NAME=..._pretrained CHECKPOINT_NUM=pretrained``), with the first
   test input as ``--sample``;
2. ``package`` the run (OUT/packages/<dataset>.zip);
3. ``predict`` every test image of every condition as the original's scripts/*/predict_*.sh did:
   CARE denoising ``--patches 128,256,256 --overlap 64,64,64 --denormalize`` (``--cropped_prediction``,
   ``--CARE_normalize``, ``--offset``); Flywing ``--whole --denormalize``; label-free ``--whole`` (test images predicted
   whole, no CARE normalization);
4. ``evaluate`` against the ground truth (CARE protocol, DESIGN.md section 5) into OUT/metrics/<condition>.csv;
5. write OUT/table.md and OUT/table.csv in the paper's layout: one row per condition (CARE, Flywing: NRMSE, PSNR,
   SSIM) or structure (label-free: Pearson r), mean +- sample sd (ddof 1) over the test images.

Data layouts, as the original's scripts read them:

- Planaria: test_data/condition_{1,2,3}/*.tif and test_data/GT/*.tif (20 each; paired by file name);
- Tribolium: test_data/*.tif, each a stack of 4 volumes (index 3 GT, 2 condition_1, 1 condition_2, 0 condition_3), which
  the original splits into test_data/GT and test_data/condition_N (datasets/care/format_data.py) before predicting.
  Already split folders are used as they are; otherwise the stacks are split here into OUT/test_data (6 each);
- Flywing: test_data/C1..C3/*.tif inputs (stacks), ground truth test_data/PreMosa/GT (the original's
  evaluate_Flywing.sh), else test_data/GT (26 each);
- label-free: the test TIFFs the original's predict.sh writes with datasets/label-free/generate_npz_or_tiff.py from the
  Allen Institute CZI files: DATA/<structure>/datasets/test/test_image_NN.tiff (signal) and .../ground_truth/ (target),
  already z-scored at 0.108 um and resized to 0.29 um (DATA defaults to ORIGINAL/save_dir/label-free, where predict.sh
  puts them). gvtnet-zoo reads no CZI; see "label-free" in the README section "Reproducing the paper's tables".

``--set SECTION.KEY=VALUE`` is passed to import-tf (e.g. the reduced width of test checkpoints);
``--weight-formats`` to package (the first one is then the format predict uses).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CARE_METRICS = ("nrmse", "psnr", "ssim")
LABEL_FREE_METRICS = ("pearson_r",)
CARE_PATCHES = ["--patches", "128,256,256", "--overlap", "64,64,64", "--denormalize"]
STRUCTURES = ("alpha_tubulin", "beta_actin", "desmoplakin", "dic_lamin_b1", "dna", "fibrillarin", "lamin_b1",
              "membrane_caax_63x", "myosin_iib", "sec61_beta", "st6gal1", "tom20", "zo1")
# dataset -> save_dir sub-folder, spec, test images per condition in the paper (the scripts' NUM_TEST_PAIRS)
CARE_DATASETS = {
    "planaria": ("care_denoising/planaria", "gvtnet-care-denoise", 20),
    "tribolium": ("care_denoising/tribolium", "gvtnet-care-denoise", 6),
    "flywing": ("care_projection/flywing", "gvtnet-flywing-projection", 26),
}
TRIBOLIUM_STACK = {"GT": 3, "condition_1": 2, "condition_2": 1, "condition_3": 0}
IMAGE_SUFFIXES = (".tif", ".tiff")


class Failed(Exception):
    """A step failed; the message says which (gvtnet-zoo has already printed its own one-line reason)."""


def zoo(argv: list[str]) -> None:
    """Run one gvtnet-zoo command; a non-zero exit status stops the reproduction."""
    from gvtnet_zoo.cli import main

    print("+ gvtnet-zoo " + " ".join(argv), flush=True)
    status = main(argv)
    if status != 0:
        raise Failed(f"gvtnet-zoo {argv[0]} exited with status {status}")


def images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise Failed(f"{folder} is not a folder")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise Failed(f"no TIFF images in {folder}")
    return found


def test_data(data: Path) -> Path:
    """The test_data folder of an extracted CSBDeep data set (DATA itself or DATA/test_data)."""
    folder = data / "test_data" if (data / "test_data").is_dir() else data
    if not folder.is_dir():
        raise Failed(f"{data} is neither a test_data folder nor a folder holding one")
    return folder


def checkpoint(original: Path, save: str, model: str) -> Path:
    prefix = original / "save_dir" / save / "models" / f"{model}_pretrained" / "model.ckpt-pretrained"
    if not prefix.with_name(prefix.name + ".index").is_file():
        raise Failed(f"no published checkpoint {prefix}.index; give --original a clone of github.com/divelab/GVTNets "
                     "with its save_dir/ checkpoints")
    return prefix


def split_tribolium(folder: Path, out: Path) -> Path:
    """The original's test_data/{GT,condition_N} folders: as they are when present, else split from the stacks."""
    if all((folder / name).is_dir() for name in TRIBOLIUM_STACK):
        return folder
    import tifffile

    target = out / "test_data"
    for stack in images(folder):
        volumes = tifffile.imread(stack)
        if volumes.ndim != 4 or volumes.shape[0] != 4:
            raise Failed(f"{stack} is {volumes.shape}; a Tribolium test stack holds 4 volumes (3 conditions and GT)")
        for name, index in TRIBOLIUM_STACK.items():
            (target / name).mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(target / name / stack.name, volumes[index])
    return target


def mean_sd(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def read_metrics(path: Path, metrics: Sequence[str]) -> dict[str, list[float]]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {m: [float(r[m]) for r in rows] for m in metrics}


def write_table(out: Path, title: str, label: str, rows: dict[str, dict[str, list[float]]],
                metrics: Sequence[str]) -> None:
    """OUT/table.md (mean +- sd, the paper's layout) and OUT/table.csv (means, sds and image counts)."""
    names = {"nrmse": "NRMSE", "psnr": "PSNR", "ssim": "SSIM", "pearson_r": "Pearson r"}
    lines = [f"# {title}", "", f"| {label} | n | " + " | ".join(names[m] for m in metrics) + " |",
             "|---|---:|" + "---:|" * len(metrics)]
    with (out / "table.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([label, "n", *[f"{m}_{s}" for m in metrics for s in ("mean", "sd")]])
        for row, values in rows.items():
            stats = [mean_sd(values[m]) for m in metrics]
            n = len(values[metrics[0]])
            writer.writerow([row, n, *[f"{v:.6g}" for pair in stats for v in pair]])
            lines.append(f"| {row} | {n} | " + " | ".join(f"{mu:.4f} ± {sd:.4f}" for mu, sd in stats) + " |")
    lines += ["", "mean ± sample sd (ddof 1) over the test images; per-image values in metrics/*.csv."]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def import_and_package(args: argparse.Namespace, prefix: Path, spec: str, name: str, sample: Path) -> Path:
    run, package = args.out / "runs" / name, args.out / "packages" / f"{name}.zip"
    run.parent.mkdir(parents=True, exist_ok=True)
    package.parent.mkdir(parents=True, exist_ok=True)
    sets = [a for value in args.set for a in ("--set", value)]
    overwrite = ["--overwrite"] if args.overwrite else []
    zoo(["import-tf", str(prefix), "--spec", spec, *sets, "--out", str(run),
         "--sample", str(sample), *overwrite])
    formats = ["--weight-formats", args.weight_formats] if args.weight_formats else []
    zoo(["package", str(run), "--out", str(package), "--name", f"gvtnet-{name}", *formats, *overwrite])
    return package


def predict_and_evaluate(args: argparse.Namespace, package: Path, inputs: Path, truth: Path, row: str,
                         flags: list[str]) -> Path:
    predictions, metrics = args.out / "predictions" / row, args.out / "metrics" / f"{row}.csv"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    predictions.parent.mkdir(parents=True, exist_ok=True)
    overwrite = ["--overwrite"] if args.overwrite else []
    weights = ["--weight-format", args.weight_formats.split(",")[0]] if args.weight_formats else []
    zoo(["predict", str(package), str(inputs), "--out", str(predictions), *flags, *weights,
         "--device", args.device, *overwrite])
    zoo(["evaluate", str(predictions), str(truth), "--out", str(metrics), *overwrite])
    return metrics


def check_count(folder: Path, expected: int) -> None:
    found = len(images(folder))
    if found != expected:
        print(f"note: {folder} holds {found} test images; the paper used {expected}", flush=True)


def run_care(args: argparse.Namespace, dataset: str) -> None:
    save, spec, expected = CARE_DATASETS[dataset]
    prefix = checkpoint(args.original, save, "gvtnet_care")
    folder = test_data(args.data)
    if dataset == "tribolium":
        folder = split_tribolium(folder, args.out)
    if dataset == "flywing":
        conditions = args.conditions or ["C1", "C2", "C3"]
        truth = args.truth or next((folder / t for t in ("PreMosa/GT", "GT") if (folder / t).is_dir()), None)
        flags = ["--whole", "--denormalize"]
    else:
        conditions = args.conditions or ["condition_1", "condition_2", "condition_3"]
        truth = args.truth or folder / "GT"
        flags = list(CARE_PATCHES)
    if truth is None or not Path(truth).is_dir():
        raise Failed(f"no ground-truth folder in {folder} (give --truth)")
    package = import_and_package(args, prefix, spec, dataset, images(folder / conditions[0])[0])
    rows = {}
    for condition in conditions:
        check_count(folder / condition, expected)
        metrics = predict_and_evaluate(args, package, folder / condition, Path(truth), condition, flags)
        rows[condition] = read_metrics(metrics, CARE_METRICS)
    title = {"planaria": "CARE denoising, Planaria", "tribolium": "CARE denoising, Tribolium",
             "flywing": "CARE projection, Flywing"}[dataset]
    write_table(args.out, f"{title}: published GVTNet checkpoint through gvtnet-zoo", "condition", rows, CARE_METRICS)


def run_label_free(args: argparse.Namespace) -> None:
    data = args.data or args.original / "save_dir" / "label-free"
    rows = {}
    for structure in args.structures or STRUCTURES:
        test = data / structure / "datasets" / "test"
        if not (test / "ground_truth").is_dir():
            raise Failed(f"no {test}/ground_truth: make the test TIFFs with the original's scripts/label-free/"
                         f"predict.sh (datasets/label-free/generate_npz_or_tiff.py reads the CZI files), or give --data")
        prefix = checkpoint(args.original, f"label-free/{structure}", "gvtnet_label-free")
        package = import_and_package(args, prefix, "gvtnet-label-free", f"label-free-{structure}", images(test)[0])
        metrics = predict_and_evaluate(args, package, test, test / "ground_truth", structure, ["--whole"])
        rows[structure] = read_metrics(metrics, LABEL_FREE_METRICS)
    write_table(args.out, "Label-free prediction: published GVTNet checkpoints through gvtnet-zoo", "structure", rows,
                LABEL_FREE_METRICS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="task", required=True)
    for task, what in (("care", "CARE denoising (Planaria or Tribolium)"), ("flywing", "CARE projection (Flywing)"),
                       ("label-free", "label-free prediction (13 structures)")):
        p = sub.add_parser(task, help=f"reproduce the paper's {what} table")
        p.add_argument("--original", type=Path, required=True, help="clone of github.com/divelab/GVTNets (save_dir/)")
        p.add_argument("--data", type=Path, required=task != "label-free",
                       help="the extracted data set (or its test_data folder); label-free: the folder of "
                            "<structure>/datasets/test (default ORIGINAL/save_dir/label-free)")
        p.add_argument("--out", type=Path, required=True, help="results folder (runs, packages, predictions, tables)")
        p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="spec override for import-tf (only for checkpoints of another width)")
        p.add_argument("--weight-formats", help="package only these (comma-separated); predict uses the first")
        p.add_argument("--device", default="auto", help="predict's --device (default auto)")
        p.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
        if task == "label-free":
            p.add_argument("--structures", nargs="+", choices=STRUCTURES, help="only these structures (default all 13)")
        else:
            p.add_argument("--conditions", nargs="+", help="condition folders of test_data (default: the paper's 3)")
            p.add_argument("--truth", type=Path, help="ground-truth folder (default: the original's)")
        if task == "care":
            p.add_argument("--dataset", choices=["planaria", "tribolium"],
                           help="default: from the --data folder's name (Denoising_Planaria, Denoising_Tribolium)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        if args.task == "label-free":
            run_label_free(args)
        elif args.task == "flywing":
            run_care(args, "flywing")
        else:
            folder = args.data.resolve()
            names = f"{folder.name} {folder.parent.name}".lower()  # Denoising_X or Denoising_X/test_data
            dataset = args.dataset or next((d for d in ("planaria", "tribolium") if d in names), None)
            if dataset is None:
                raise Failed(f"cannot tell Planaria from Tribolium by the path {args.data}; give --dataset")
            run_care(args, dataset)
    except Failed as err:
        print(f"reproduce_paper: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
