"""Folder prediction and tiling: gvtnet-zoo predict against the zoo's own `bioimageio predict` CLI.

    python benchmarks/predict_folder.py                 # demo CARE GVTNet package, 6 volumes, CPU
    python benchmarks/predict_folder.py --package model.zip --device cuda

1. Six synthetic 3D volumes predicted by `gvtnet-zoo predict FOLDER` and by `bioimageio predict` with
   the same package and inputs: each tool with its default weights, then both with the same weight
   format. Wall time of each whole command (start-up included), best of --repeats, the two tools
   alternating so that a slow spell of the machine hits both.
2. One large volume predicted --whole and --tile: peak resident memory of each command (GNU time).
Prints markdown tables; --out appends them to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import date
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
    return package_run(root / "run", root / "demo.zip", echo=lambda _: None, overwrite=True)


def _default_formats(package: Path, device: str) -> tuple[str, str]:
    """The weights each tool runs when none are named: gvtnet-zoo's choice, and bioimageio.core's priority order."""
    from bioimageio.core.backends import DEFAULT_WEIGHT_FORMAT_PRIORITY_ORDER
    from bioimageio.spec import load_model_description

    from gvtnet_zoo.predict.model import choose_weights

    weights = load_model_description(str(package), perform_io_checks=False).weights
    present = [f for f in ("onnx", "torchscript", "pytorch_state_dict") if getattr(weights, f, None) is not None]
    theirs = next(f for f in DEFAULT_WEIGHT_FORMAT_PRIORITY_ORDER if f in present)
    return choose_weights(present, device), theirs


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
    parser.add_argument("--weight-formats", default="onnx,torchscript",
                        help="formats run by both tools after each tool's default")
    parser.add_argument("--volumes", type=int, default=6)
    parser.add_argument("--shape", default="32,128,128")
    parser.add_argument("--large", default="32,768,768", help="the volume for whole versus tiled memory; empty to skip")
    parser.add_argument("--tile", default="32,192,192")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = [f"## Folder prediction ({platform.machine()}, {os.cpu_count()} cores; {date.today()})", "",
             f"`python benchmarks/predict_folder.py {shlex.join(sys.argv[1:])}`", ""]
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
        defaults = _default_formats(package, args.device)
        lines += [f"{args.volumes} volumes of {args.shape} on {args.device}, best of {args.repeats} "
                  "(whole command, start-up included)", "",
                  "| weights | gvtnet-zoo predict FOLDER (s) | bioimageio predict --inputs [files] (s) | bioimageio / gvtnet-zoo |",
                  "|---|---:|---:|---:|"]
        for weight_format in ["default", *args.weight_formats.split(",")]:
            chosen = None if weight_format == "default" else weight_format
            ours = [str(BIN / "gvtnet-zoo"), "predict", str(package), str(folder), "--out", str(root / "ours"),
                    "--device", args.device, "--overwrite"] + (["--weight-format", chosen] if chosen else [])
            zoo_device = "cuda" if args.device.startswith("cuda") else "cpu"
            theirs = [str(BIN / "bioimageio"), "predict", str(package), f"--inputs={json.dumps(files)}",
                      f"--outputs={root / 'theirs'}/{{sample_id}}.tif", f"--devices={json.dumps([zoo_device])}",
                      "--overwrite"] + ([f"--weight-format={chosen}"] if chosen else [])
            times: dict[str, list[float]] = {"ours": [], "theirs": []}
            for _ in range(args.repeats):
                times["ours"].append(_timed(ours))
                times["theirs"].append(_timed(theirs))
            t_ours, t_theirs = min(times["ours"]), min(times["theirs"])
            label = f"each its default ({defaults[0]} / {defaults[1]})" if chosen is None else f"both {chosen}"
            lines.append(f"| {label} | {t_ours:.2f} | {t_theirs:.2f} | {t_theirs / t_ours:.2f} |")
            print(lines[-1], flush=True)
        lines.append("")
        if not args.large:
            emit("\n".join(lines), args.out)
            return
        large = [int(s) for s in args.large.split(",")]
        tifffile.imwrite(root / "large.tif", synthetic_pair("denoise", large, rng)[0], photometric="minisblack")
        base = [str(BIN / "gvtnet-zoo"), "predict", str(package), str(root / "large.tif"),
                "--device", args.device, "--overwrite"]
        whole = _peak_rss_mb(base + ["--out", str(root / "whole"), "--whole"])
        tiled = _peak_rss_mb(base + ["--out", str(root / "tiled"), "--tile", args.tile])
        lines += [f"one volume of {args.large} voxels", "", "| mode | peak resident memory (MB) |", "|---|---:|",
                  f"| --whole | {whole:,.0f} |", f"| --tile {args.tile} | {tiled:,.0f} |", ""]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
