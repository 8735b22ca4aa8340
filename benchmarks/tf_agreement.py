"""How closely gvtnet-zoo's networks compute the original GVTNets' function, on the fixtures that
tools/tf_reference.py made by running the original TensorFlow code (tests/tf_import/fixtures):

    python benchmarks/tf_agreement.py

For each fixture: the checkpoint imported onto the spec's network, then the eager network (inference and,
with batch norm, training mode), its TorchScript and its ONNX export run on the fixture's input; the table
gives max |ours - original| / (original's max - min).
"""

from __future__ import annotations

import copy
import io
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
from gvtnet_zoo.tf_import.run import load_tf_weights  # noqa: E402


def _relative(produced: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(produced - reference).max() / (reference.max() - reference.min()))


def main() -> None:
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


if __name__ == "__main__":
    main()
