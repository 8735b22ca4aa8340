"""Which weights and devices run: the onnxruntime CUDA probe, and GPU requests without onnxruntime CUDA."""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import tifffile
import torch

from gvtnet_zoo import devices
from gvtnet_zoo.cli import main
from gvtnet_zoo.errors import UserError
from gvtnet_zoo.predict import model as zoo_model

ALL = ["onnx", "torchscript", "pytorch_state_dict"]


def test_the_probe_model_is_one_this_onnxruntime_reads() -> None:
    # a probe the runtime refuses (e.g. too new an IR version) would report "no GPU" on every machine
    session = onnxruntime.InferenceSession(devices.probe_model(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.array([2.5], np.float32)})[0].tolist() == [2.5]


def _machine(monkeypatch: pytest.MonkeyPatch, onnx_cuda: bool, torch_cuda: bool) -> None:
    monkeypatch.setattr(zoo_model, "onnx_cuda_loads", lambda: onnx_cuda)
    monkeypatch.setattr(zoo_model, "torch_cuda_available", lambda: torch_cuda)


@pytest.mark.parametrize("onnx_cuda, torch_cuda, request_, expected", [
    (False, False, "auto", "onnx"),         # CPU machine: ONNX on the CPU
    (True, True, "auto", "onnx"),           # onnxruntime's CUDA works: ONNX on the GPU
    (False, True, "auto", "torchscript"),   # only torch has the GPU: TorchScript there beats ONNX on the CPU
    (False, True, "cuda", "torchscript"),
    (False, True, "cpu", "onnx"),           # the CPU was asked for
])
def test_default_weights_follow_the_devices_that_work(monkeypatch: pytest.MonkeyPatch, onnx_cuda: bool,
                                                      torch_cuda: bool, request_: str, expected: str) -> None:
    _machine(monkeypatch, onnx_cuda, torch_cuda)
    assert zoo_model.choose_weights(ALL, request_) == expected


@pytest.mark.parametrize("onnx_cuda, torch_cuda, request_, expected", [
    (False, False, "auto", "torchscript"),  # CPU workers: TorchScript keeps to its one thread
    (False, False, "cpu", "torchscript"),
    (True, True, "auto", "onnx"),           # a GPU per worker: the GPU rule as before
])
def test_one_thread_workers_take_torchscript_on_the_cpu(monkeypatch: pytest.MonkeyPatch, onnx_cuda: bool,
                                                         torch_cuda: bool, request_: str, expected: str) -> None:
    _machine(monkeypatch, onnx_cuda, torch_cuda)
    assert zoo_model.choose_weights(ALL, request_, one_thread=True) == expected
    assert zoo_model.choose_weights(["onnx", "pytorch_state_dict"], request_, one_thread=True) == "onnx"


def test_onnx_only_packages_keep_onnx_and_state_dicts_are_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, False, True)
    assert zoo_model.choose_weights(["onnx", "pytorch_state_dict"], "auto") == "onnx"
    with pytest.raises(UserError, match="only has pytorch_state_dict"):
        zoo_model.choose_weights(["pytorch_state_dict"], "auto", "m.zip")


def test_cuda_with_onnx_but_no_onnxruntime_cuda_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, False, True)
    with pytest.raises(UserError, match="CUDA provider does not load"):
        zoo_model._devices("onnx", "cuda", 0)
    assert zoo_model._devices("onnx", "auto", 0) == (["CPUExecutionProvider"], "CPU (onnxruntime)")


def test_a_linux_machine_without_a_gpu_driver_is_answered_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices.sys, "platform", "linux")
    monkeypatch.setattr(devices.os.path, "exists", lambda path: False)
    monkeypatch.setitem(sys.modules, "torch", None)  # any import of torch would now fail
    assert devices.torch_cuda_available() is False
    assert devices.torch_devices() == ["cpu"]
    monkeypatch.setattr(devices.os.path, "exists", lambda path: path == "/dev/nvidiactl")
    with pytest.raises(ImportError):  # a driver is there: torch is asked
        devices.torch_cuda_available()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_default_prediction_runs_on_the_gpu(packages: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with zipfile.ZipFile(packages["2d"]) as archive:
        tifffile.imwrite(tmp_path / "a.tif", np.load(archive.open("test_input.npy"))[0, 0])
    assert main(["predict", str(packages["2d"]), str(tmp_path / "a.tif"), "--out", str(tmp_path / "out")]) == 0
    # ONNX through onnxruntime's CUDA provider where it loads, else TorchScript on the GPU; never the CPU
    assert re.search(r"weights on (CUDA \(onnxruntime\)|cuda:0)$", capsys.readouterr().out.strip().splitlines()[-1])
