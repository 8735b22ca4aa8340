"""Files from others: checkpoints load as data only, package code runs only when named, nothing downloads unasked."""

from __future__ import annotations

import socket
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from gvtnet_zoo.cli import main
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.train.checkpoint import load_checkpoint, save_checkpoint
from gvtnet_zoo.trust import read_description, remote_files, runs_our_own_code


class _Payload:
    """Unpickling this would run code: exactly what a malicious checkpoint does."""

    def __reduce__(self) -> tuple:
        return (print, ("code from the checkpoint ran",))


def test_checkpoints_with_objects_are_refused_and_plain_ones_load(tmp_path: Path) -> None:
    plain = {"step": 3, "model": {"w": torch.ones(2)}, "spec": {"name": "x"}, "torch_rng": torch.get_rng_state()}
    save_checkpoint(tmp_path / "plain.pt", plain)
    assert load_checkpoint(tmp_path / "plain.pt")["step"] == 3
    torch.save({"step": 1, "payload": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="holds more than tensors, numbers and strings"):
        load_checkpoint(tmp_path / "evil.pt")


def test_a_run_with_an_unsafe_checkpoint_is_not_packaged(packages: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(packages["2d"].parent / "run", run)
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    state["payload"] = _Payload()
    torch.save(state, run / "checkpoints" / "best.pt")
    assert main(["package", str(run), "--out", str(tmp_path / "m.zip")]) == 2
    captured = capsys.readouterr()
    assert "code from the checkpoint ran" not in captured.out + captured.err
    assert captured.err.count("\n") == 1 and "could run code" in captured.err
    assert not (tmp_path / "m.zip").exists()


def _unpacked(package: Path, root: Path) -> Path:
    with zipfile.ZipFile(package) as archive:
        archive.extractall(root)
    return root / "rdf.yaml"


def _rewrite(rdf: Path, change) -> Path:  # noqa: ANN001 - a function of the loaded mapping
    content = yaml.safe_load(rdf.read_text())
    change(content)
    rdf.write_text(yaml.safe_dump(content))
    return rdf


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every attempt to open a connection is recorded and refused."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise ConnectionRefusedError(f"test: no connections ({address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_remote_files_are_refused_before_any_connection(packages: dict[str, Path], tmp_path: Path,
                                                        no_network: list[object],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://127.0.0.1:9/weights.onnx"

    def remote_weights(content: dict) -> None:
        content["weights"]["onnx"]["source"] = url

    rdf = _rewrite(_unpacked(packages["2d"], tmp_path / "pkg"), remote_weights)
    assert remote_files(read_description(rdf)) == [("weights.onnx.source", url)]
    image = tmp_path / "pkg" / "sample_input.tif"
    for argv in (["predict", str(rdf), str(image), "--out", str(tmp_path / "out"), "--weight-format", "onnx"],
                 ["predict", str(rdf), str(image), "--out", str(tmp_path / "out")],
                 ["test", str(rdf)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"weights.onnx.source: {url}" in err and "--allow-download" in err
    assert no_network == []
    assert not (tmp_path / "out").exists()
    # allowed, the download is attempted (and fails: nothing listens there) - the flag is what decides
    assert main(["predict", str(rdf), str(image), "--out", str(tmp_path / "out"), "--weight-format", "onnx",
                 "--allow-download"]) == 2
    assert no_network and "a download failed" in capsys.readouterr().err


def test_our_own_packages_name_no_remote_file(packages: dict[str, Path]) -> None:
    assert remote_files(read_description(packages["3d"])) == []


def test_test_runs_foreign_state_dict_code_only_when_named(packages: dict[str, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert runs_our_own_code(read_description(packages["2d"]))
    root = tmp_path / "pkg"
    rdf = _unpacked(packages["2d"], root)
    marker = tmp_path / "ran.txt"
    architecture = root / "gvtnet_zoo_network.py"
    architecture.write_text(architecture.read_text() + f"\nopen({str(marker)!r}, 'w').write('ran')\n")

    def new_hash(content: dict) -> None:
        import hashlib

        content["weights"]["pytorch_state_dict"]["architecture"]["sha256"] = hashlib.sha256(
            architecture.read_bytes()).hexdigest()

    _rewrite(rdf, new_hash)
    assert not runs_our_own_code(read_description(rdf))
    assert main(["test", str(rdf)]) == 0
    out = capsys.readouterr().out
    assert "skipping pytorch_state_dict" in out and "the package's file gvtnet_zoo_network.py" in out
    assert "torchscript" in out and "onnx" in out and not marker.exists()
    assert main(["test", str(rdf), "--weight-format", "pytorch_state_dict"]) == 0
    assert marker.exists()
