"""What other zoo consumers do at the border of a GVTNet package, against the original GVTNets' predict.py.

    .venv/bin/python benchmarks/border_behaviour.py [--out benchmarks/results/border.md]

Imports the CARE fixture checkpoint (tests/tf_import/fixtures/care, the original network at reduced width,
random weights), packages it, and predicts the odd-sized raw image of tests/tf_import/predict_fixtures/care
(11 x 21 x 27, the original's output beside it) with: gvtnet-zoo (`predict --whole --denormalize`);
bioimageio.core 0.11 (gvtnet-zoo's) and 0.10.2 (ilastik 1.4.2's libraries, `.venv-oldspec`), given the image as it
is and, where refused, padded by the user on the far side (numpy 'symmetric', as a user or bioimageio.core's own
blocking would) to the package's smallest valid size. Reports each output's largest and mean deviation from the
original's, in the original's range (de-normalized with the image's own 2 / 99.8 percentiles, as the original).
deepImageJ (Fiji, Java) does not run here; it is not measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "tf_import" / "fixtures" / "care" / "model.ckpt-1"
REFERENCE = ROOT / "tests" / "tf_import" / "predict_fixtures" / "care" / "reference.npz"
CORE_SCRIPT = """
import json, sys, numpy as np
from bioimageio.core import predict
raw = np.load(sys.argv[2])
try:
    out = predict(model=sys.argv[1], inputs=raw[None, None])
    np.save(sys.argv[3], next(iter(out.members.values())).data.to_numpy()[0, 0])
    print(json.dumps({"ok": True}))
except Exception as err:
    print(json.dumps({"ok": False, "error": type(err).__name__ + ": " + str(err).splitlines()[0][:120]}))
"""


def _package(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from gvtnet_zoo.cli import main

    sample = folder / "sample.tif"
    tifffile.imwrite(sample, np.random.default_rng(1).gamma(2.0, 10.0, (8, 64, 64)).astype(np.float32))
    main(["import-tf", str(FIXTURE), "--spec", "gvtnet-care-denoise", "--set", "model.base_channels=4",
          "--out", str(folder / "run"), "--sample", str(sample)])
    main(["package", str(folder / "run"), "--out", str(folder / "model.zip"), "--weight-formats", "torchscript"])
    return folder / "model.zip"


def _deviation(produced: np.ndarray, expected: np.ndarray) -> str:
    span = float(np.ptp(expected))
    return f"{np.abs(produced - expected).max() / span:.1e} max, {np.abs(produced - expected).mean() / span:.1e} mean"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "border.md")
    args = parser.parse_args()
    reference = np.load(REFERENCE)
    raw, expected = reference["raw"], reference["whole"]
    p2, p998 = np.percentile(raw.astype(np.float64), [2, 99.8])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        package = _package(folder)
        from gvtnet_zoo.cli import main as cli

        tifffile.imwrite(folder / "raw.tif", raw)
        cli(["predict", str(package), str(folder / "raw.tif"), "--out", str(folder / "out"), "--whole", "--denormalize",
             "--weight-format", "torchscript"])
        rows.append(("gvtnet-zoo `predict --whole --denormalize`", "as given",
                     _deviation(np.squeeze(tifffile.imread(folder / "out" / "raw.tif")), expected)))
        step, minimum = 4, {"z": 4, "y": 4, "x": 4}
        with __import__("zipfile").ZipFile(package) as archive:
            import yaml

            axes = yaml.safe_load(archive.read("rdf.yaml"))["inputs"][0]["axes"]
            minimum = {a["id"]: a["size"]["min"] for a in axes if a.get("type") == "space"}
        valid = [max(minimum[a], -(-s // step) * step) for a, s in zip("zyx", raw.shape)]
        padded = np.pad(raw.astype(np.float32), [(0, v - s) for v, s in zip(valid, raw.shape)], mode="symmetric")
        pythons = {"bioimageio.core 0.11": sys.executable,
                   "bioimageio.core 0.10.2 (ilastik 1.4.2's)": str(ROOT / ".venv-oldspec" / "bin" / "python")}
        for label, python in pythons.items():
            if not Path(python).exists():
                rows.append((label, "-", "not installed here (make oldspec)"))
                continue
            for how, image in (("as given", raw.astype(np.float32)), (f"padded far side to {'x'.join(map(str, valid))}", padded)):
                np.save(folder / "in.npy", image)
                done = subprocess.run([python, "-c", CORE_SCRIPT, str(package), str(folder / "in.npy"), str(folder / "o.npy")],
                                      capture_output=True, text=True)
                lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
                result = json.loads(lines[-1]) if lines else {"ok": False, "error": done.stderr.strip().splitlines()[-1][:120]}
                if not result["ok"]:
                    rows.append((label, how, f"refused ({result['error'][:70]}...)"))
                    continue
                # the package's output is in normalized units; its percentiles are those of the image it was given
                given = image
                q2, q998 = np.percentile(given.astype(np.float64), [2, 99.8])
                out = np.load(folder / "o.npy")[tuple(slice(0, s) for s in raw.shape)] * (q998 - q2) + q2
                rows.append((label, how, _deviation(out, expected)))
    lines = ["# The border of a GVTNet package: other consumers against the original's predict.py", "",
             "Written by `benchmarks/border_behaviour.py`: the CARE fixture network (reduced width, random weights) on",
             f"an {'x'.join(map(str, raw.shape))} uint16 image (not a multiple of the step {step}); deviation from the",
             "original's output (largest and mean), in its range. deepImageJ was not run (no Fiji here).", "",
             "| consumer | image given | deviation from the original |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
