"""Module dependencies that DESIGN.md fixes: prediction depends on the models, not on training or export."""

from __future__ import annotations

import ast
from pathlib import Path

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


def test_predict_imports_neither_train_nor_export() -> None:
    for path in sorted((PACKAGE / "predict").glob("*.py")):
        bad = {m for m in _imported(path) if m.split(".")[0] in ("train", "export")}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_devices_and_halo_live_in_one_place() -> None:
    from gvtnet_zoo import devices
    from gvtnet_zoo.models import halo

    assert callable(devices.choose_device) and callable(halo.tiling_halo)
    assert not (PACKAGE / "export" / "halo.py").exists()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "def choose_device" not in text or path.name == "devices.py", path
