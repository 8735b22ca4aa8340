"""Publishing: `upload` against a local artifact manager, the checks that stop it, and `test --partners`."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from gvtnet_zoo.cli import main
from gvtnet_zoo.export.package import package_run
from gvtnet_zoo.export.publish import FAIL, PASS, upload_checks, validation_section
from gvtnet_zoo.export.zoo_test import FormatResult
from gvtnet_zoo.trust import read_description

from ..predict.zoo_builders import two_input_package
from .artifact_manager import serve

TOKEN = "hypha-token-7f3a9c"


@pytest.fixture(scope="module")
def publishable(packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package of the tiny 2D run with a real-looking author (and the model card's ## Validation)."""
    out = tmp_path_factory.mktemp("publish") / "model.zip"
    return package_run(packages["2d"].parent / "run", out, authors=["A. Microscopist;Example Institute"],
                       echo=lambda _: None)


@contextlib.contextmanager
def artifact_manager() -> Any:
    yield from serve()


def _cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI in its own process (bioimageio.spec reads its upload settings at import), no proxies, no token
    unless given."""
    clean = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("BIOIMAGEIO_HYPHA")}
    return subprocess.run([sys.executable, "-m", "gvtnet_zoo", *args], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={**clean, "NO_PROXY": "127.0.0.1,localhost", **env})


def test_upload_sends_the_package_with_the_token_only_in_the_authorization_header(publishable: Path,
                                                                                  tmp_path: Path) -> None:
    with artifact_manager() as manager:
        result = _cli(tmp_path, "upload", str(publishable), BIOIMAGEIO_HYPHA_UPLOAD_TOKEN=TOKEN,
                      BIOIMAGEIO_HYPHA_UPLOAD=manager.url)
    assert result.returncode == 0, result.stderr[-3000:]
    requests = manager.requests
    create, edit = requests[0], requests[-1]
    assert create.path.endswith("/create") and edit.path.endswith("/edit")
    sent = create.json()
    descr = read_description(publishable)
    assert (sent["parent_id"], sent["type"], sent["version"]) == ("bioimage-io/bioimage.io", "model", "stage")
    assert sent["manifest"]["name"] == descr.name and "id" not in sent["manifest"]
    assert edit.json()["manifest"]["status"] == "request-review"
    members = set(zipfile.ZipFile(publishable).namelist())
    uploaded = manager.uploaded()
    assert set(uploaded) == members  # every file of the package, rdf.yaml included
    with zipfile.ZipFile(publishable) as archive:
        for name in members - {"rdf.yaml"}:
            assert archive.read(name) in uploaded[name], name
    assert f"name: {descr.name}".encode() in uploaded["rdf.yaml"]
    for request in requests:
        assert TOKEN.encode() not in request.body and TOKEN not in request.path
        others = {k: v for k, v in request.headers.items() if k != "authorization"}
        assert TOKEN not in str(others)
        expected = f"Bearer {TOKEN}" if request.method == "POST" else None  # the file PUTs go to storage, no token
        assert request.headers.get("authorization") == expected
    assert TOKEN not in result.stdout + result.stderr
    assert "staged for review at" in result.stdout and "affable-shark" in result.stdout
    assert "upload token" in result.stdout and "pass" in result.stdout


def test_a_failing_check_sends_nothing(packages: dict[str, Path], publishable: Path, tmp_path: Path) -> None:
    with artifact_manager() as manager:
        no_author = _cli(tmp_path, "upload", str(packages["2d"]), BIOIMAGEIO_HYPHA_UPLOAD_TOKEN=TOKEN,
                         BIOIMAGEIO_HYPHA_UPLOAD=manager.url)
        no_token = _cli(tmp_path, "upload", str(publishable), BIOIMAGEIO_HYPHA_UPLOAD=manager.url)
        dry = _cli(tmp_path, "upload", str(publishable), "--dry-run", BIOIMAGEIO_HYPHA_UPLOAD_TOKEN=TOKEN,
                   BIOIMAGEIO_HYPHA_UPLOAD=manager.url)
    assert manager.requests == []
    assert no_author.returncode == 1 and "nothing was sent" in no_author.stderr
    assert [line.split()[1] for line in no_author.stdout.splitlines() if line.strip().startswith("authors")] == [FAIL]
    assert no_token.returncode == 1 and "BIOIMAGEIO_HYPHA_UPLOAD_TOKEN" in no_token.stdout
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert f"would send {len(zipfile.ZipFile(publishable).namelist())} files to {manager.url}" in dry.stdout
    assert "Traceback" not in no_author.stderr + no_token.stderr + dry.stderr


def _rows(out: str) -> dict[str, str]:
    """'name  status  why' table lines -> {name: status}."""
    rows = {}
    for line in out.splitlines():
        parts = [p for p in line.strip().split("  ") if p.strip()]
        if len(parts) >= 2 and parts[1].strip() in (PASS, FAIL, "n/a", "not run"):
            rows[parts[0].strip()] = parts[1].strip()
    return rows


def test_partner_table_of_our_package(publishable: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(publishable), "--partners"]) == 0
    rows = _rows(capsys.readouterr().out)
    for name in ("test_model onnx", "authors", "licence", "model card ## Validation", "no id",
                 "core: determinism=full onnx", "core: determinism=full torchscript", "ilastik: one input, one output",
                 "ilastik: weights it loads", "deepImageJ: one input", "deepImageJ: ONNX opset <= 17",
                 "deepImageJ: axes and sizes it reads"):
        assert rows[name] == PASS, (name, rows)
    assert [n for n, s in rows.items() if s == "not run"] == [
        "core: runtime as described", "ilastik: test_model in its environment", "deepImageJ: headless Fiji"]
    assert "upload token" not in rows


def test_partner_table_of_a_model_with_two_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package, *_ = two_input_package(tmp_path)
    assert main(["test", str(package), "--partners"]) == 1  # its card has no ## Validation
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows["ilastik: one input, one output"] == "n/a" and "this model has 2 and 1" in out
    assert rows["deepImageJ: one input"] == "n/a" and "deepImageJ takes one input; this model has 2" in out
    assert rows["model card ## Validation"] == FAIL and rows["core: determinism=full torchscript"] == PASS


def test_upload_checks_refuse_placeholders_an_id_and_a_card_without_validation(publishable: Path) -> None:
    from bioimageio.spec.model import v0_5 as bio

    descr = read_description(publishable)
    tests = [FormatResult("onnx", True)]

    def status(changed: Any, name: str) -> str:
        return {c.name: c.status for c in upload_checks(publishable, changed, tests, True)}[name]

    assert status(descr, "authors") == PASS and status(descr, "no id") == PASS
    assert status(descr.model_copy(update={"authors": [bio.Author(name="Your Name")]}), "authors") == FAIL
    assert status(descr.model_copy(update={"authors": []}), "authors") == FAIL
    assert status(descr.model_copy(update={"id": "affable-shark"}), "no id") == FAIL
    assert status(descr, "upload token") == PASS
    assert {c.name: c.status for c in upload_checks(publishable, descr, tests, False)}["upload token"] == FAIL
    assert validation_section("# M\n\n## Validation\n\n| loss | 0.02 |\n\n## How to run it\nx") == "| loss | 0.02 |"
    assert validation_section("# M\n\n# Validation\n\n| loss | 0.02 |\n") is None  # a level-1 heading is not it
    assert validation_section("## Validation\nnone yet\n## Next") == "none yet"  # found; the check wants numbers


def test_files_outside_the_package_are_never_uploaded(publishable: Path, tmp_path: Path) -> None:
    """A folder package whose rdf names ../secret.md, an absolute path or '..' attachments fails the checks and
    sends nothing; a dry run of a good package shows each file's path in the package (issue 26, item 5)."""
    import yaml

    folder = tmp_path / "pkg"
    with zipfile.ZipFile(publishable) as archive:
        archive.extractall(folder)
    (tmp_path / "secret.md").write_text("# not yours\n\n## Validation\n\n| loss | 0.1 |\n")
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    rdf["documentation"] = "../secret.md"
    rdf["attachments"] = [*(rdf.get("attachments") or []), {"source": "/etc/hostname"},
                          {"source": "../../../../../../etc/hostname"}]
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    from gvtnet_zoo.export.publish import files_outside

    assert sorted(files_outside(folder / "rdf.yaml")) == [
        "attachments[2].source: /etc/hostname", "attachments[3].source: ../../../../../../etc/hostname",
        "documentation: ../secret.md"]
    assert files_outside(publishable) == []
    with artifact_manager() as manager:
        dry = _cli(tmp_path, "upload", str(folder / "rdf.yaml"), "--dry-run", BIOIMAGEIO_HYPHA_UPLOAD_TOKEN=TOKEN,
                   BIOIMAGEIO_HYPHA_UPLOAD=manager.url)
        good = _cli(tmp_path, "upload", str(publishable), "--dry-run", BIOIMAGEIO_HYPHA_UPLOAD_TOKEN=TOKEN,
                    BIOIMAGEIO_HYPHA_UPLOAD=manager.url)
    assert manager.requests == []
    assert dry.returncode == 1 and "nothing was sent" in dry.stderr and "would send" not in dry.stdout
    assert "lies outside the package" in dry.stdout and "(and 2 more)" in dry.stdout
    assert good.returncode == 0 and "weights.onnx (weights.onnx)" in good.stdout, good.stdout[-2000:]
