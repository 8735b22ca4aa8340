"""Module dependencies that DESIGN.md fixes: prediction depends on the models, not on training or export."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gvtnet_zoo

PACKAGE = Path(gvtnet_zoo.__file__).parent


def _imported(path: Path) -> set[str]:
    """Every gvtnet_zoo module a file imports (at any level of the file), as dotted names below gvtnet_zoo."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = path.parent.relative_to(PACKAGE).parts[: len(path.parent.relative_to(PACKAGE).parts) - node.level + 1]
            found.add(".".join([*base, *(node.module.split(".") if node.module else [])]))
    return found


# what each layer may not import (gvtnet_zoo's top-level modules, errors.py, atomic.py and the like, are below all)
FORBIDDEN = {
    "image_io": {"data", "predict", "train", "export", "evaluate", "models", "nn", "napari", "tf_import"},
    "nn": {"image_io", "data", "predict", "train", "export", "evaluate", "models", "napari", "tf_import"},
    "models": {"image_io", "data", "predict", "train", "export", "evaluate", "napari", "tf_import"},
    "data": {"predict", "train", "export", "evaluate", "napari", "tf_import"},
    "predict": {"train", "export", "evaluate", "napari", "tf_import"},
    "evaluate": {"train", "export", "napari", "tf_import"},
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    """Reading and writing images (image_io) is below data and predict, which are below train and export."""
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        bad = {m for m in _imported(path) if m.split(".")[0] in FORBIDDEN[layer]}
        assert not bad, f"{layer}/{path.name} imports {sorted(bad)}"


def test_file_formats_are_parsed_only_in_image_io() -> None:
    """tifffile, zarr and ome-zarr are imported by image_io alone (and by the memory check's TIFF header read)."""
    allowed = {"image_io", "napari"}
    for path in PACKAGE.rglob("*.py"):
        part = path.relative_to(PACKAGE).parts[0]
        modules = {a.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Import) for a in node.names}
        modules |= {node.module.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module}
        if part not in allowed:
            assert not modules & {"zarr", "ome_zarr"}, f"{path} parses Zarr itself"


def test_devices_and_halo_live_in_one_place() -> None:
    from gvtnet_zoo import devices
    from gvtnet_zoo.models import halo

    assert callable(devices.choose_device) and callable(halo.tiling_halo)
    assert not (PACKAGE / "export" / "halo.py").exists()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "def choose_device" not in text or path.name == "devices.py", path


GUI_MODULES = {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "npe2", "vispy"}


def test_the_core_never_imports_qt_or_napari() -> None:
    """The GUI is an optional extra: only gvtnet_zoo/napari may import it, and the core install does not need it."""
    import subprocess
    import sys

    import tomllib

    for path in PACKAGE.rglob("*.py"):
        if "napari" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            assert not {n.split(".")[0] for n in names} & GUI_MODULES, f"{path} imports {names}"
    code = ("import sys, gvtnet_zoo.cli, gvtnet_zoo.demo, gvtnet_zoo.predict.stream, gvtnet_zoo.predict.on_dask; "
            "gvtnet_zoo.cli.build_parser(); print(sorted({m.split('.')[0] for m in sys.modules}))")
    loaded = set(ast.literal_eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                 check=True).stdout))
    assert not loaded & GUI_MODULES, loaded & GUI_MODULES
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    assert not any(name.lower() in core for name in GUI_MODULES)
    assert any("napari" in d for d in project["optional-dependencies"]["napari"])


def test_every_subpackage_is_installed() -> None:
    """pyproject.toml lists packages by hand: a new subpackage missing there would be absent from a wheel."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"gvtnet_zoo." + ".".join(p.parent.relative_to(PACKAGE).parts) for p in PACKAGE.rglob("__init__.py")
             if p.parent != PACKAGE}
    assert found <= listed, sorted(found - listed)
