"""The README's walkthroughs run as written (issue 33): every indented block after a ``<!-- commands: NAME -->``
line (tools/readme_commands.py) runs in ``bash -e`` in a temporary folder with the installed ``gvtnet-zoo``.

What stands in for what a reader has (each listed where it is made, and nothing else is changed):
- publish: bioimage.io is the local stand-in of its artifact manager (tests/export/artifact_manager.py), and a
  token stands in for the reader's own in place of the README's "...";
- laptop, workstation: ``care.zip`` is the synthetic walkthrough's package, ``stack.ome.zarr`` and ``big.tif``
  small synthetic volumes;
- import-tf: the published checkpoints are the original code's reduced-width fixtures (tests/tf_import/fixtures)
  at the published paths, so each ``--spec`` gets the width override they need, each loop runs its first item
  (CI time), and the ``--sample`` images are small synthetic ones.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from .export.artifact_manager import serve

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "tf_import" / "fixtures"
_spec = importlib.util.spec_from_file_location("readme_commands", ROOT / "tools" / "readme_commands.py")
readme_commands = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_commands)

TESTED = {"synthetic", "publish", "laptop", "workstation", "import-tf"}


def _run(name: str, cwd: Path, substitutions: tuple[tuple[str, Any], ...] = (), **env: str) -> str:
    """Walkthrough ``name`` in ``cwd`` after the given (regex, replacement) substitutions, each of which must apply."""
    script = readme_commands.script(name)
    for pattern, replacement in substitutions:
        script, count = re.subn(pattern, replacement, script)
        assert count, f"the README's {name} walkthrough no longer contains {pattern!r}"
    clean = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("BIOIMAGEIO_HYPHA")}
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=1200, env={**clean, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{clean['PATH']}",
                                             "NO_PROXY": "127.0.0.1,localhost", **env})
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"the README's {name} walkthrough failed:\n{script}\n{output[-4000:]}"
    return output


def test_every_walkthrough_in_the_readme_is_run_here() -> None:
    assert set(readme_commands.walkthroughs((ROOT / "README.md").read_text())) == TESTED


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The synthetic walkthrough's folder after its commands ran, and what they printed."""
    folder = tmp_path_factory.mktemp("synthetic")
    return folder, _run("synthetic", folder)


def test_the_synthetic_walkthrough_runs_as_written(synthetic: tuple[Path, str]) -> None:
    folder, output = synthetic
    for name in ("run/checkpoints/best.pt", "care-demo.zip", "pred/test_000.tif", "pred/test_001.tif",
                 "pred-metrics.csv", "pred-report.png"):
        assert (folder / name).is_file(), name
    assert re.search(r"best\.pt is step \d+ \(lowest validation loss, train\.best_by\)", output)
    assert re.search(r"^nrmse\s+mean 0\.\d+", output, re.MULTILINE)
    figures = importlib.util.spec_from_file_location("walkthrough_figures", ROOT / "benchmarks" / "walkthrough_figures.py")
    script = importlib.util.module_from_spec(figures)
    figures.loader.exec_module(script)
    assert "After 400 steps train printed a held-out NRMSE of 0." in script.summary([1.0, 1.0], output)  # what it parses


def test_publishing_runs_as_written_against_a_stand_in(synthetic: tuple[Path, str]) -> None:
    folder, _ = synthetic
    for manager in serve():
        _run("publish", folder, ((r"BIOIMAGEIO_HYPHA_UPLOAD_TOKEN=\.\.\.", "BIOIMAGEIO_HYPHA_UPLOAD_TOKEN=hypha-7f3a9c"),),
             BIOIMAGEIO_HYPHA_UPLOAD=manager.url)  # the reader's own token in place of "..."
        uploaded = manager.uploaded()
    assert "rdf.yaml" in uploaded and any(name.endswith(".onnx") for name in uploaded)
    assert sum(r.path.endswith("/create") for r in manager.requests) == 1  # the dry run sent nothing


@pytest.fixture
def volumes(synthetic: tuple[Path, str], tmp_path: Path) -> Path:
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image

    shutil.copy(synthetic[0] / "care-demo.zip", tmp_path / "care.zip")
    rng = np.random.default_rng(3)
    write_image((rng.random((16, 96, 80)) * 1000).astype(np.uint16),
                zarr.open_group(str(tmp_path / "stack.ome.zarr"), mode="w", zarr_format=3), fmt=FormatV05(), axes="zyx")
    tifffile.imwrite(tmp_path / "big.tif", (rng.random((16, 72, 64)) * 1000).astype(np.uint16))
    return tmp_path


def test_the_laptop_and_workstation_examples_run_as_written_one_after_the_other(volumes: Path) -> None:
    """A reader who runs both blocks in one folder: no output of one is in the way of the other."""
    _run("laptop", volumes)
    assert (volumes / "pred" / "stack.pred.ome.zarr").is_dir() and (volumes / "pred" / "big.pred.ome.zarr").is_dir()
    _run("workstation", volumes)
    assert (volumes / "pred-dask" / "stack.pred.ome.zarr").is_dir() and (volumes / "pred-4" / "stack.pred.ome.zarr").is_dir()


def _published_layout(original: Path) -> None:
    """The fixture checkpoints where the published ones lie in a GVTNets checkout, and small sample images."""
    layout = {"label_free_3d": "label-free/alpha_tubulin/models/gvtnet_label-free_pretrained",
              "care": "care_denoising/planaria/models/gvtnet_care_pretrained",
              "flywing": "care_projection/flywing/models/gvtnet_care_pretrained"}
    for fixture, folder in layout.items():
        (original / "save_dir" / folder).mkdir(parents=True)
        for path in (FIXTURES / fixture).glob("model.ckpt-1.*"):
            shutil.copy(path, original / "save_dir" / folder / path.name.replace("ckpt-1", "ckpt-pretrained"))
    rng = np.random.default_rng(5)
    for name, shape in (("SIGNAL_alpha_tubulin.tif", (16, 128, 128)), ("NOISY_planaria.tif", (8, 64, 64)),
                        ("STACK.tif", (6, 208, 208))):
        tifffile.imwrite(original / name, rng.gamma(2.0, 10.0, shape).astype(np.float32))


def test_importing_the_published_checkpoints_runs_as_written(tmp_path: Path) -> None:
    _published_layout(tmp_path / "GVTNets")
    widths = {"gvtnet-label-free": "model.base_channels=4", "gvtnet-care-denoise": "model.base_channels=4",
              "gvtnet-flywing-projection": "model.network.base_channels=4"}
    output = _run("import-tf", tmp_path, (
        (r"git clone https://github\.com/divelab/GVTNets && cd GVTNets", "cd GVTNets"),
        (r"for (\w+) in ([\w-]+)(?:[\s\\]+[\w-]+)*; do", r"for \1 in \2; do"),
        (r"--spec ([\w-]+)", lambda m: f"--spec {m.group(1)} --set {widths[m.group(1)]}"),
    ))
    for name in ("gvtnet-label-free-alpha_tubulin", "gvtnet-care-planaria", "gvtnet-flywing"):
        assert (tmp_path / "GVTNets" / f"{name}.zip").is_file(), output[-3000:]
