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
from gvtnet_zoo.errors import UserError
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


def _upload_dry_run(package: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list]:
    """`upload --dry-run` with a token against a local artifact manager: (the run, the requests that arrived)."""
    with artifact_manager() as manager:
        result = _cli(tmp_path, "upload", str(package), "--dry-run", BIOIMAGEIO_HYPHA_UPLOAD_TOKEN=TOKEN,
                      BIOIMAGEIO_HYPHA_UPLOAD=manager.url)
    return result, manager.requests


def _assert_refused(result: subprocess.CompletedProcess, requests: list, *named: str) -> None:
    """Exit 2, nothing sent, nothing listed, one error line naming each of ``named`` (field path and value)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("gvtnet-zoo: error:")]
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    assert requests == [] and "would send" not in result.stdout and "hostname" not in result.stdout
    assert len(errors) == 1 and "nothing was sent" in errors[0] and "Traceback" not in result.stderr
    for text in named:
        assert text in errors[0], errors[0]


def _edited_rdf(publishable: Path, **changes: Any) -> str:
    """The publishable package's rdf.yaml with top-level fields set (a list value is appended to the field's)."""
    import yaml

    rdf = yaml.safe_load(zipfile.ZipFile(publishable).read("rdf.yaml"))
    for key, value in changes.items():
        rdf[key] = [*(rdf.get(key) or []), *value] if isinstance(value, list) else value
    return yaml.safe_dump(rdf)


def _rezip(publishable: Path, out: Path, members: dict[str, str]) -> Path:
    """A copy of the package zip: ``members`` first, in order, then every other member as it was."""
    with zipfile.ZipFile(publishable) as source, zipfile.ZipFile(out, "w") as target:
        for name, text in members.items():
            target.writestr(name, text)
        for name in source.namelist():
            if name not in members:
                target.writestr(name, source.read(name))
    return out


def test_files_outside_the_package_are_never_uploaded(publishable: Path, tmp_path: Path) -> None:
    """A folder package whose rdf names ../secret.md, an absolute path or '..' attachments is refused, having sent
    nothing; a dry run of a good package shows each file's path in the package (issue 26, item 5)."""
    import yaml

    from gvtnet_zoo.export.package_files import files_outside

    folder = tmp_path / "pkg"
    with zipfile.ZipFile(publishable) as archive:
        archive.extractall(folder)
    (tmp_path / "secret.md").write_text("# not yours\n\n## Validation\n\n| loss | 0.1 |\n")
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    rdf["documentation"] = "../secret.md"
    rdf["attachments"] = [*(rdf.get("attachments") or []), {"source": "/etc/hostname"},
                          {"source": "../../../../../../etc/hostname"}]
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    assert sorted(files_outside(folder / "rdf.yaml")) == [
        "attachments[2].source: '/etc/hostname' (an absolute path)",
        "attachments[3].source: '../../../../../../etc/hostname' (a path out of the package ('..'))",
        "documentation: '../secret.md' (a path out of the package ('..'))"]
    assert files_outside(publishable, read_description(publishable)) == []
    dry, requests = _upload_dry_run(folder / "rdf.yaml", tmp_path)
    _assert_refused(dry, requests, "(and 2 more)")
    good, requests = _upload_dry_run(publishable, tmp_path)
    assert requests == []
    assert good.returncode == 0 and "weights.onnx (weights.onnx)" in good.stdout, good.stdout[-2000:]


def test_an_icon_outside_the_package_is_refused(publishable: Path, tmp_path: Path) -> None:
    """Issue 31, item 3a: any field names a file, not only source, documentation, covers and attachments."""
    package = _rezip(publishable, tmp_path / "icon.zip", {"rdf.yaml": _edited_rdf(publishable, icon="/etc/hostname")})
    _assert_refused(*_upload_dry_run(package, tmp_path), "icon: '/etc/hostname'", "an absolute path")


def test_a_decoy_description_before_the_real_one_changes_nothing(publishable: Path, tmp_path: Path) -> None:
    """Issue 31, item 3b: the check reads the description bioimageio.spec loads (rdf.yaml), not a clean
    a_decoy_rdf.yaml stored before it in the zip."""
    clean = zipfile.ZipFile(publishable).read("rdf.yaml").decode()
    real = _edited_rdf(publishable, attachments=[{"source": "/etc/hostname"}])
    package = _rezip(publishable, tmp_path / "decoy.zip", {"a_decoy_rdf.yaml": clean, "rdf.yaml": real})
    assert zipfile.ZipFile(package).namelist()[:2] == ["a_decoy_rdf.yaml", "rdf.yaml"]
    _assert_refused(*_upload_dry_run(package, tmp_path), "attachments[2].source: '/etc/hostname'")


def test_a_folder_described_by_bioimageio_yaml_is_checked(publishable: Path, tmp_path: Path) -> None:
    """Issue 31, item 3c: a folder package whose description is bioimageio.yaml (there is no rdf.yaml)."""
    folder = tmp_path / "pkg"
    with zipfile.ZipFile(publishable) as archive:
        archive.extractall(folder)
    (folder / "rdf.yaml").unlink()
    (folder / "bioimageio.yaml").write_text(_edited_rdf(publishable, attachments=[{"source": "/etc/hostname"}]))
    _assert_refused(*_upload_dry_run(folder, tmp_path), "attachments[2].source: '/etc/hostname'")


def test_what_bioimageio_would_pack_is_checked_too(publishable: Path) -> None:
    """The second line of defence: a description (here changed in memory) whose file the spec would pack from
    outside the package, though the package's rdf.yaml is clean."""
    from bioimageio.spec.model import v0_5 as bio

    from gvtnet_zoo.export.package_files import files_outside, refuse_files_outside

    descr = read_description(publishable)
    outside = descr.model_copy(update={"documentation": bio.FileDescr(source=Path("/etc/hostname"))})
    assert files_outside(publishable, outside) == [
        "the file 'hostname' bioimageio.spec would pack: '/etc/hostname' (a file beside the zip, not in it)"]
    with pytest.raises(UserError, match="hostname"):
        refuse_files_outside(publishable, outside)
    refuse_files_outside(publishable, descr)


FORMAT_04 = {
    "format_version": "0.4.10", "type": "model", "name": "conv 0.4", "description": "format 0.4 with ../ in text",
    "authors": [{"name": "Someone Else"}], "cite": [{"text": "none", "url": "https://example.org/paper"}],
    "license": "MIT", "documentation": "README.md", "covers": ["cover.png"], "timestamp": "2024-01-01T00:00:00",
    "test_inputs": ["in.npy"], "test_outputs": ["out.npy"], "sample_inputs": ["in.tif"], "sample_outputs": ["out.tif"],
    "attachments": {"files": ["spec.yaml"]}, "git_repo": "https://github.com/example/repo",
    "inputs": [{"name": "raw", "axes": "bcyx", "data_type": "float32", "shape": [1, 1, 64, 64]}],
    "outputs": [{"name": "out", "axes": "bcyx", "data_type": "float32", "shape": [1, 1, 64, 64]}],
    "weights": {"torchscript": {"source": "w.pt"}, "pytorch_state_dict": {
        "source": "w.pth", "architecture": "net.py:Net", "architecture_sha256": "0" * 64}},
    "config": {"deepimagej": {"prediction": {"preprocess": [{"kwargs": "pre.ijm"}]}}, "units": "1/s"},
}
FORMAT_05 = {
    "format_version": "0.5.4", "type": "model", "name": "conv 0.5", "description": "see a/../b", "icon": "icon.png",
    "authors": [{"name": "Someone Else"}], "cite": [{"text": "none", "doi": "10.1038/s42256-020-00283-x"}],
    "license": "MIT", "documentation": "README.md", "covers": ["cover.png"], "attachments": [{"source": "spec.yaml"}],
    "inputs": [{"id": "raw", "axes": [{"type": "batch"}, {"type": "space", "id": "x", "size": 64}],
                "test_tensor": {"source": "in.npy"}, "sample_tensor": {"source": "in.tif"}}],
    "outputs": [{"id": "out", "axes": [{"type": "batch"}, {"type": "space", "id": "x", "size": 64}],
                 "test_tensor": {"source": "out.npy"}}],
    "weights": {"pytorch_state_dict": {"source": "w.pth", "architecture": {"source": "net.py", "callable": "Net"}},
                "onnx": {"source": "w.onnx", "external_data": {"source": "w.onnx.data"}}},
    "config": {"bioimageio": {"reproducibility_tolerance": [{"relative_tolerance": 0.001}]}},
}
FIELDS = [(FORMAT_04, field) for field in (
    "documentation", "covers[0]", "test_inputs[0]", "test_outputs[0]", "sample_inputs[0]", "sample_outputs[0]",
    "attachments.files[0]", "weights.torchscript.source", "weights.pytorch_state_dict.architecture",
    "config.deepimagej.prediction.preprocess[0].kwargs", "rdf_source", "config.not_a_field_of_the_spec")] + [
    (FORMAT_05, field) for field in (
    "icon", "documentation", "covers[0]", "attachments[0].source", "inputs[0].test_tensor.source",
    "inputs[0].sample_tensor.source", "outputs[0].test_tensor.source", "weights.pytorch_state_dict.source",
    "weights.pytorch_state_dict.architecture.source", "weights.onnx.external_data.source",
    "config.bioimageio.not_a_field_of_the_spec", "not_a_field_of_the_spec[1].deeper")]
OUTSIDE = {"absolute": ("/etc/hostname", "an absolute path"), "dots": ("sub/../../secret", "('..')"),
           "file url": ("file:///etc/hostname", "a file:// URL"), "home": ("~/.ssh/id_rsa", "an absolute path"),
           "windows": ("C:\\Windows\\win.ini", "an absolute path"), "link": ("link.png", "a link out of the package")}


def _set(document: dict, field: str, value: str) -> dict:
    """A deep copy of ``document`` with ``value`` at the field path (e.g. 'inputs[0].test_tensor.source'),
    creating what is missing."""
    import copy
    import re

    document = copy.deepcopy(document)
    keys: list[Any] = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", field)]
    node: Any = document
    for key, following in zip(keys, keys[1:]):
        if isinstance(node, list):
            node.extend({} for _ in range(key + 1 - len(node)))
        elif key not in node:
            node[key] = [] if isinstance(following, int) else {}
        node = node[key]
    if isinstance(node, list):
        node.extend(None for _ in range(keys[-1] + 1 - len(node)))
    node[keys[-1]] = value
    return document


@pytest.mark.parametrize("kind", list(OUTSIDE))
@pytest.mark.parametrize("document,field", FIELDS, ids=[f"{d['format_version']}-{f}" for d, f in FIELDS])
def test_every_field_that_names_a_file_outside_is_found(document: dict, field: str, kind: str, tmp_path: Path) -> None:
    """Whatever the format version and the field's name (known to the spec or not): the first finding names the
    field path and the value, and the unchanged document names nothing outside."""
    import yaml

    from gvtnet_zoo.export.package_files import files_outside

    value, why = OUTSIDE[kind]
    folder = tmp_path / "pkg"
    folder.mkdir()
    (tmp_path / "secret").write_text("not yours")
    (folder / "link.png").symlink_to(tmp_path / "secret")
    (folder / "rdf.yaml").write_text(yaml.safe_dump(document))
    assert files_outside(folder) == []
    (folder / "rdf.yaml").write_text(yaml.safe_dump(_set(document, field, value)))
    found = files_outside(folder)
    assert len(found) == 1 and found[0].startswith(f"{field}: {value!r} (") and why in found[0], found


@pytest.mark.parametrize("token,accepted", [("...", False), ("<token>", False), ("", False), (TOKEN, True)])
def test_a_placeholder_token_copied_from_the_readme_fails_the_token_check(monkeypatch: pytest.MonkeyPatch, token: str,
                                                                         accepted: bool) -> None:
    from bioimageio.spec import settings

    from gvtnet_zoo.export.upload import _token_set

    monkeypatch.setattr(settings, "hypha_upload_token", token)
    assert _token_set() is accepted
