"""import-tf against the original GVTNets: fixtures made by tools/tf_reference.py running the TF1 code.

Each fixture is a checkpoint of the original network (reduced width, every variable random, one Adam
step: the published checkpoints' kinds of variables), an input and the original's output. No TensorFlow
runs here.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import tifffile
import torch
import yaml

from gvtnet_zoo.cli import main
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.models import build_model
from gvtnet_zoo.spec_loading import load_spec
from gvtnet_zoo.tf_import.checkpoint import TFCheckpoint
from gvtnet_zoo.tf_import.names import tf_variable_map
from gvtnet_zoo.tf_import.run import is_model_variable, load_tf_weights

FIXTURES = Path(__file__).parent / "fixtures"
TOLERANCE = 1e-5  # of the original output's range
# case -> (spec, overrides, a sample image shape large enough to package)
CASES = {
    "care": ("gvtnet-care-denoise", ["model.base_channels=4"], (8, 64, 64)),
    "flywing": ("gvtnet-flywing-projection", ["model.network.base_channels=4"], (6, 208, 208)),
    "label_free_3d": ("gvtnet-label-free", ["model.base_channels=4"], (16, 128, 128)),
    "label_free_2d": ("gvtnet-label-free", ["model.base_channels=4", "model.spatial_dims=2", "data.patch_size=[64,64]"],
                      (160, 160)),
}
FULL_SIZE = {"care": ("gvtnet-care-denoise", 39), "flywing": ("gvtnet-flywing-projection", 70),
             "label_free": ("gvtnet-label-free", 95)}


def _relative_error(produced: np.ndarray, reference: np.ndarray) -> float:
    assert produced.shape == reference.shape
    return float(np.abs(produced - reference).max() / (reference.max() - reference.min()))


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_reader_reads_every_variable_of_a_tf1_checkpoint(case: str) -> None:
    checkpoint = TFCheckpoint(FIXTURES / case / "model.ckpt-1")
    listed = json.loads((FIXTURES / case / "variables.json").read_text())
    assert checkpoint.shapes() == {name: tuple(shape) for name, shape in listed.items()}
    assert int(checkpoint.read("global_step")) == 1
    kernel = checkpoint.read("first_convolution/kernel")
    assert kernel.dtype == np.float32 and kernel.std() > 0


@pytest.mark.parametrize("task", sorted(FULL_SIZE))
def test_the_full_size_networks_have_the_published_variable_lists(task: str) -> None:
    """The original's graphs at the paper's width (names and shapes, as the published save_dir/ checkpoints list
    them): every model variable is one of the spec's weights, of the same shape; the rest is optimizer state."""
    spec_name, count = FULL_SIZE[task]
    listed = json.loads((FIXTURES / "full_size_variables.json").read_text())[task]
    model_variables = {name: tuple(shape) for name, shape in listed.items() if is_model_variable(name)}
    assert len(model_variables) == count
    assert {n for n in listed if not is_model_variable(n)} == {"global_step", "beta1_power", "beta2_power"} | {
        f"{n}/{slot}" for n in model_variables if not n.endswith(("moving_mean", "moving_variance"))
        for slot in ("Adam", "Adam_1")}
    model = build_model(load_spec(spec_name))
    state = model.state_dict()
    ours = {}
    for key, name in tf_variable_map(model).items():
        shape = tuple(state[key].shape)
        ours[name] = (*shape[2:], shape[1], shape[0]) if len(shape) >= 3 else shape
    assert ours == model_variables


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_imported_network_computes_the_original_function(case: str) -> None:
    spec_name, overrides, _ = CASES[case]
    model = build_model(load_spec(spec_name, overrides))
    load_tf_weights(model, TFCheckpoint(FIXTURES / case / "model.ckpt-1"))
    reference = np.load(FIXTURES / case / "reference.npz")
    modes = [m for m in ("eval", "train") if m in reference]
    assert modes[0] == "eval" and (case.startswith("label_free") == ("train" in modes))  # batch norm: both modes
    for mode in modes:
        model.train(mode == "train")
        with torch.no_grad():
            produced = model(torch.from_numpy(reference["input"])).numpy()
        assert _relative_error(produced, reference[mode]) < TOLERANCE, mode


@pytest.mark.parametrize("case", sorted(CASES))
def test_import_tf_then_package_gives_the_original_outputs(case: str, tmp_path: Path) -> None:
    spec_name, overrides, sample_shape = CASES[case]
    sample = tmp_path / "sample.tif"
    tifffile.imwrite(sample, np.random.default_rng(1).gamma(2.0, 10.0, sample_shape).astype(np.float32))
    sets = [arg for value in overrides for arg in ("--set", value)]
    run, package = tmp_path / "run", tmp_path / "model.zip"
    assert main(["import-tf", str(FIXTURES / case / "model.ckpt-1"), "--spec", spec_name, *sets, "--out", str(run),
                 "--sample", str(sample)]) == 0
    assert main(["package", str(run), "--out", str(package), "--weight-formats", "torchscript,onnx"]) == 0
    reference = np.load(FIXTURES / case / "reference.npz")
    with zipfile.ZipFile(package) as zipped:
        zipped.extractall(tmp_path / "package")
        card = zipped.read("README.md").decode()
        rdf = zipped.read("rdf.yaml").decode()
    assert "import-tf" in card and "divelab/GVTNets" in card and "GPL-3.0" in card and "## Validation" in card
    assert "license: GPL-3.0-only" in rdf and "Shuiwang Ji" in rdf
    scripted = torch.jit.load(str(tmp_path / "package" / "weights_torchscript.pt")).eval()
    with torch.no_grad():
        assert _relative_error(scripted(torch.from_numpy(reference["input"])).numpy(), reference["eval"]) < TOLERANCE
    session = onnxruntime.InferenceSession(str(tmp_path / "package" / "weights.onnx"), providers=["CPUExecutionProvider"])
    assert _relative_error(session.run(None, {"input": reference["input"]})[0], reference["eval"]) < TOLERANCE
    if case == "label_free_2d":
        _check_pixel_size(package, rdf, tmp_path)


def _check_pixel_size(package: Path, rdf: str, tmp_path: Path) -> None:
    """The label-free package declares 0.29 um pixels; predict --pixel-size resizes around the package, the
    network seeing the image z-scored at its own pixel size, then resized (as the original's test images)."""
    from gvtnet_zoo.data.resample import resize_yx

    described = yaml.safe_load(rdf)
    for tensor in (described["inputs"][0], described["outputs"][0]):
        yx = [a for a in tensor["axes"] if a.get("id") in ("y", "x")]
        assert [(a["scale"], a["unit"]) for a in yx] == [(0.29, "micrometer")] * 2
    image = np.random.default_rng(2).gamma(2.0, 10.0, (320, 288)).astype(np.float32)
    tifffile.imwrite(tmp_path / "fine.tif", image)
    # as the original: z-scored (float64) at the image's own pixel size, then resized; a valid size (160, 144)
    zscored = (image.astype(np.float64) - image.mean(dtype=np.float64)) / (image.std(dtype=np.float64) + 1e-6)
    scripted = torch.jit.load(str(tmp_path / "package" / "weights_torchscript.pt")).eval()
    with torch.no_grad():
        coarse = scripted(torch.from_numpy(resize_yx(zscored, "yx", 0.5))[None, None]).numpy()[0]
    for out, keep in (("p1", []), ("p2", ["--keep-model-pixel-size"])):
        assert main(["predict", str(package), str(tmp_path / "fine.tif"), "--out", str(tmp_path / out), "--whole",
                     "--pixel-size", "0.145", "--weight-format", "torchscript", *keep]) == 0
    resized, kept = (tifffile.imread(tmp_path / out / "fine.tif") for out in ("p1", "p2"))
    assert resized.shape[-2:] == image.shape and kept.shape == coarse.shape and coarse.shape[-2:] == (160, 144)
    np.testing.assert_allclose(kept, coarse, atol=1e-5 * np.ptp(coarse))
    np.testing.assert_allclose(resized, resize_yx(coarse, "cyx", sizes=image.shape), atol=1e-5 * np.ptp(coarse))


def _refused(capsys: pytest.CaptureFixture, args: list[str], out: Path) -> str:
    assert main(["import-tf", *args, "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_bad_checkpoints_and_specs_are_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    care = str(FIXTURES / "care" / "model.ckpt-1")
    out = tmp_path / "run"
    assert "lacks variable" in _refused(capsys, [care, "--spec", "gvtnet-label-free", "--set", "model.base_channels=4"],
                                        out)
    assert "first_convolution/kernel has shape [3, 3, 3, 1, 4]" in _refused(capsys, [care, "--spec", "gvtnet-care-denoise"],
                                                                            out)
    no_sigma = _refused(capsys, [care, "--spec", "gvtnet-care-denoise", "--set", "model.base_channels=4",
                                 "--set", "model.sigma_head=false", "--set", "train.loss=mae"], out)
    assert "holds variable out_sigma_conv/kernel" in no_sigma
    assert "not found" in _refused(capsys, [str(tmp_path / "nothing"), "--spec", "gvtnet-care-denoise"], out)
    (tmp_path / "junk.index").write_bytes(b"not a table" * 10)
    assert "not a TensorFlow checkpoint" in _refused(capsys, [str(tmp_path / "junk"), "--spec", "gvtnet-care-denoise"], out)
    assert "import-tf takes GVTNet specs" in _refused(capsys, [care, "--spec", "unet-care-denoise"], out)


def test_a_damaged_data_file_is_caught_by_its_checksum(tmp_path: Path) -> None:
    for path in (FIXTURES / "care").glob("model.ckpt-1.*"):
        shutil.copy(path, tmp_path / path.name)
    data = tmp_path / "model.ckpt-1.data-00000-of-00001"
    damaged = bytearray(data.read_bytes())
    damaged[100] ^= 0xFF
    data.write_bytes(bytes(damaged))
    checkpoint = TFCheckpoint(tmp_path / "model.ckpt-1")
    with pytest.raises(UserError, match="fails its checksum"):
        for name in checkpoint.entries:
            checkpoint.read(name)


def test_an_existing_run_folder_is_kept_without_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["import-tf", str(FIXTURES / "care" / "model.ckpt-1"), "--spec", "gvtnet-care-denoise", "--set",
            "model.base_channels=4", "--out", str(out)]
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main([*args, "--overwrite"]) == 0
    assert (out / "checkpoints" / "best.pt").is_file() and not (out / "keep.txt").exists()
