"""deepImageJ runs TorchScript on PyTorch engines up to 2.0: do our archives load and agree there?

    python benchmarks/torchscript_compat.py --old-python /path/to/venv-with-torch-2.0/bin/python

Trains each demo spec for two steps on synthetic data, packages it (which runs the zoo's tests with
the current PyTorch), then loads weights_torchscript.pt with the other interpreter's PyTorch, runs
the package's test input through it (with the package's own normalization) and reports the
largest difference from test_output.npy. Prints a markdown table (append it with --out).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from gvtnet_zoo.data.synthetic import write_synthetic
from gvtnet_zoo.export.package import package_run
from gvtnet_zoo.spec_loading import load_spec
from gvtnet_zoo.train.trainer import train

CASES = {  # spec -> (synthetic task, source shape, overrides)
    "demo-gvtnet-label-free-2d": ("label-free", (128, 128), []),
    "demo-unet-label-free-2d": ("label-free", (160, 160), []),
    "demo-gvtnet-care-denoise-3d": ("denoise", (16, 96, 96), []),
    "unet-care-denoise": ("denoise", (16, 96, 96), ["model.base_channels=8", "data.patch_size=[16,32,32]"]),
    "demo-gvtnet-projection": ("projection", (16, 224, 224), []),
}
QUICK = ["train.steps=2", "train.val_every=2", "train.checkpoint_every=2", "train.log_every=1", "data.val_patches=2",
         "data.batch_size=2"]

CHECK = """
import sys, zipfile, io, numpy as np, torch
package = zipfile.ZipFile(sys.argv[1])
model = torch.jit.load(io.BytesIO(package.read("weights_torchscript.pt"))).eval()
x = np.load(io.BytesIO(package.read("test_input.npy"))); y = np.load(io.BytesIO(package.read("test_output.npy")))
mode, low, high = sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
if mode == "percentile":
    lo, hi = np.percentile(x, [low, high]); x = (x - lo) / (hi - lo + 1e-6)
else:
    x = (x - x.mean()) / (x.std() + 1e-6)
with torch.no_grad():
    out = model(torch.from_numpy(x.astype(np.float32))).numpy()
print(torch.__version__, out.shape == y.shape, float(np.abs(out - y).max()), float(np.abs(y).max()))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-python", required=True, help="a Python whose torch is the old version to check")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = ["| spec | old torch | same shape | max abs difference | output max abs |", "|---|---|---|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, (task, shape, overrides) in CASES.items():
            data = write_synthetic(task, root / name / "data", 3, 1, shape, seed=0)
            spec = load_spec(name, QUICK + overrides)
            train(spec, data / "train", root / name / "run", val=data / "test", device="cpu")
            package = package_run(root / name / "run", root / name / "model.zip", weight_formats=["torchscript"],
                                  echo=lambda _: None)
            low, high = spec.data.input_percentiles
            result = subprocess.run([args.old_python, "-c", CHECK, str(package), spec.data.normalization,
                                     str(low), str(high)], capture_output=True, text=True)
            if result.returncode:
                reason = [line for line in result.stderr.splitlines() if line.strip()][-1][:160]
                lines.append(f"| {name} | - | fails to load or run: `{reason}` | - | - |")
            else:
                version, same, diff, scale = result.stdout.split()
                lines.append(f"| {name} | {version} | {same} | {float(diff):.2e} | {float(scale):.3g} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
