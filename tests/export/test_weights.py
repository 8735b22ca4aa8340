"""Every model scripts and exports to ONNX (opset 17, dynamic axes) and matches eager at other sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from gvtnet_zoo import build_model, load_spec
from gvtnet_zoo.export import export_onnx, script_model

from ..conftest import ALL_SPECS, valid_input

TOLERANCE = 1e-4


@pytest.mark.parametrize("name", ALL_SPECS)
def test_torchscript_and_onnx_match_eager_at_other_sizes(name: str, tmp_path: Path) -> None:
    spec = load_spec(name)
    model = build_model(spec).eval()
    dims = spec.model.input_dims
    export_input = valid_input(name, (2, 2, 2)[:dims], z_slices=4)
    path = export_onnx(model, export_input, tmp_path / "model.onnx")
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version == 17
    assert [d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim][0] == "batch"
    scripted = script_model(model)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for multiples, batch, z_slices in (((1, 1, 1), 1, 3), ((3, 1, 2), 2, 7)):
        x = valid_input(name, multiples[:dims], batch=batch, z_slices=z_slices)
        assert x.shape != export_input.shape
        with torch.no_grad():
            expected = model(x)
            from_script = scripted(x)
        from_onnx = session.run(None, {"input": x.numpy()})[0]
        assert from_onnx.shape == tuple(expected.shape)
        np.testing.assert_allclose(from_script.numpy(), expected.numpy(), atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(from_onnx, expected.numpy(), atol=TOLERANCE, rtol=0)


def test_failed_export_leaves_no_file(tmp_path: Path) -> None:
    model = build_model(load_spec("demo-gvtnet-label-free-2d"))
    with pytest.raises(Exception):
        export_onnx(model, torch.zeros(1, 1, 4, 8, 8), tmp_path / "model.onnx")  # 3D input to a 2D net
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ALL_SPECS)
def test_scripted_graphs_avoid_interpolate(name: str) -> None:
    """Scripted F.interpolate calls do not load in PyTorch 2.0 (deepImageJ); nearest up-sampling repeats voxels."""
    graph = str(script_model(build_model(load_spec(name))).inlined_graph)
    assert "functional.interpolate" not in graph and "aten::upsample" not in graph
