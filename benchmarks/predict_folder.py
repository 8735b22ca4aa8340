"""Folder prediction and tiling: gvtnet-zoo predict against the zoo's own `bioimageio predict` CLI.

    python benchmarks/predict_folder.py                 # demo CARE GVTNet package, 6 volumes, CPU
    python benchmarks/predict_folder.py --package model.zip --device cuda

1. Six synthetic 3D volumes predicted by `gvtnet-zoo predict FOLDER` (one prediction pipeline for
   all files) and by `bioimageio predict` with the same package, inputs and weight format; wall
   time of each whole command (start-up included), best of --repeats.
2. One large volume predicted --whole and --tile: peak resident memory of each command (GNU time).
Prints markdown tables; --out appends them to a file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from report import emit  # benchmarks/report.py (scripts run from this folder)

from gvtnet_zoo.data.synthetic import synthetic_pair, write_synthetic
from gvtnet_zoo.export.package import package_run
from gvtnet_zoo.spec_loading import load_spec
from gvtnet_zoo.train.trainer import train

BIN = Path(sys.executable).parent


def _demo_package(root: Path) -> Path:
    data = write_synthetic("denoise", root / "data", 3, 1, (16, 96, 96), seed=0)
    spec = load_spec("demo-gvtnet-care-denoise-3d", ["train.steps=2", "train.val_every=2", "data.val_patches=2"])
    train(spec, data / "train", root / "run", val=data / "test", device="cpu")
    return package_run(root / "run", root / "demo.zip", echo=lambda _: None)


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def _peak_rss_mb(command: list[str]) -> float:
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *command], check=True, capture_output=True, text=True)
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weight-format", default="torchscript")
    parser.add_argument("--volumes", type=int, default=6)
    parser.add_argument("--shape", default="32,128,128")
    parser.add_argument("--large", default="32,768,768", help="the volume for whole versus tiled memory")
    parser.add_argument("--tile", default="32,192,192")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        package = args.package or _demo_package(root)
        folder = root / "inputs"
        folder.mkdir()
        rng = np.random.default_rng(0)
        shape = [int(s) for s in args.shape.split(",")]
        for i in range(args.volumes):
            tifffile.imwrite(folder / f"vol_{i}.tif", synthetic_pair("denoise", shape, rng)[0], photometric="minisblack")
        files = sorted(str(p) for p in folder.iterdir())
        ours = [str(BIN / "gvtnet-zoo"), "predict", str(package), str(folder), "--out", str(root / "ours"),
                "--weight-format", args.weight_format, "--device", args.device, "--overwrite"]
        zoo_device = "cuda" if args.device.startswith("cuda") else "cpu"
        theirs = [str(BIN / "bioimageio"), "predict", str(package), f"--inputs={json.dumps(files)}",
                  f"--outputs={root / 'theirs'}/{{sample_id}}.tif", f"--weight-format={args.weight_format}",
                  f"--devices={json.dumps([zoo_device])}", "--overwrite"]
        t_ours = min(_timed(ours) for _ in range(args.repeats))
        t_theirs = min(_timed(theirs) for _ in range(args.repeats))
        lines += [f"{args.volumes} volumes of {args.shape}, {args.weight_format} on {args.device}, "
                  f"best of {args.repeats} (whole command, start-up included)", "",
                  "| command | seconds | relative |", "|---|---:|---:|",
                  f"| gvtnet-zoo predict FOLDER | {t_ours:.2f} | 1.00 |",
                  f"| bioimageio predict --inputs [6 files] | {t_theirs:.2f} | {t_theirs / t_ours:.2f} |", ""]
        large = [int(s) for s in args.large.split(",")]
        tifffile.imwrite(root / "large.tif", synthetic_pair("denoise", large, rng)[0], photometric="minisblack")
        base = [str(BIN / "gvtnet-zoo"), "predict", str(package), str(root / "large.tif"), "--weight-format",
                args.weight_format, "--device", args.device, "--overwrite"]
        whole = _peak_rss_mb(base + ["--out", str(root / "whole"), "--whole"])
        tiled = _peak_rss_mb(base + ["--out", str(root / "tiled"), "--tile", args.tile])
        lines += [f"one volume of {args.large} voxels", "", "| mode | peak resident memory (MB) |", "|---|---:|",
                  f"| --whole | {whole:,.0f} |", f"| --tile {args.tile} | {tiled:,.0f} |", ""]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
