"""How closely gvtnet-zoo's networks compute the original GVTNets' function, on the fixtures that
tools/tf_reference.py made by running the original TensorFlow code (tests/tf_import/fixtures):

    python benchmarks/tf_agreement.py

For each fixture: the checkpoint imported onto the spec's network, then the eager network (inference and,
with batch norm, training mode), its TorchScript and its ONNX export run on the fixture's input; the table
gives max |ours - original| / (original's max - min).

    python benchmarks/tf_agreement.py --published GVTNets/save_dir

also reads the index of each of the authors' published checkpoints (their save_dir/; the .index files
suffice) and compares its variable list with the one the original code builds at full width
(fixtures/full_size_variables.json), which the tests check against the specs.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "tf_import"))
from test_import_tf import CASES, FIXTURES  # noqa: E402  (the cases the tests check)

from gvtnet_zoo.export.weights import export_onnx, script_model  # noqa: E402
from gvtnet_zoo.models import build_model  # noqa: E402
from gvtnet_zoo.spec_loading import load_spec  # noqa: E402
from gvtnet_zoo.tf_import.checkpoint import TFCheckpoint  # noqa: E402
from gvtnet_zoo.tf_import.run import is_model_variable, load_tf_weights  # noqa: E402


def _relative(produced: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(produced - reference).max() / (reference.max() - reference.min()))


def published(save_dir: Path) -> None:
    full = json.loads((FIXTURES / "full_size_variables.json").read_text())
    print("\n| published checkpoint | variables | model variables | equal to the original graph's |")
    print("|---|---:|---:|---|")
    for index in sorted(save_dir.glob("*/*/models/*/*.index")):
        task = "care" if "care_denoising" in index.parts else "flywing" if "care_projection" in index.parts else "label_free"
        shapes = TFCheckpoint(index).shapes()
        expected = {name: tuple(shape) for name, shape in full[task].items()}
        model = [n for n in shapes if is_model_variable(n)]
        print(f"| {'/'.join(index.relative_to(save_dir).parts[:2])} | {len(shapes)} | {len(model)} | {shapes == expected} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--published", type=Path, help="the save_dir/ of a checkout of divelab/GVTNets")
    args = parser.parse_args()
    print("| fixture | eager, inference | eager, training | TorchScript | ONNX (opset 17) |")
    print("|---|---:|---:|---:|---:|")
    for case, (spec_name, overrides, _) in sorted(CASES.items()):
        model = build_model(load_spec(spec_name, overrides))
        load_tf_weights(model, TFCheckpoint(FIXTURES / case / "model.ckpt-1"))
        reference = np.load(FIXTURES / case / "reference.npz")
        x = torch.from_numpy(reference["input"])
        row = []
        with torch.no_grad():
            row.append(_relative(model.eval()(x).numpy(), reference["eval"]))
            trained = copy.deepcopy(model).train()  # a training forward moves batch norm's running statistics
            row.append(_relative(trained(x).numpy(), reference["train"]) if "train" in reference else None)
            buffer = io.BytesIO()
            torch.jit.save(script_model(model), buffer)
            buffer.seek(0)
            row.append(_relative(torch.jit.load(buffer)(x).numpy(), reference["eval"]))
        onnx_path = Path(f"/tmp/tf_agreement_{case}.onnx")
        export_onnx(model, x, onnx_path)
        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        row.append(_relative(session.run(None, {"input": reference["input"]})[0], reference["eval"]))
        onnx_path.unlink()
        print(f"| {case} | " + " | ".join("-" if v is None else f"{v:.1e}" for v in row) + " |")
    if args.published:
        published(args.published)


if __name__ == "__main__":
    main()
