"""gvtnet-zoo train: artefacts, exact resume, run-folder rules and one-line errors."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from gvtnet_zoo.cli import main
from gvtnet_zoo.evaluate.metrics import nrmse
from gvtnet_zoo.image_io.images import read_image
from gvtnet_zoo.spec_loading import load_spec
from gvtnet_zoo.train import trainer

from .conftest import tiny_args, weights

SPEC = "demo-gvtnet-label-free-2d"


def _train(data: Path, out: Path, *overrides: str, flags: tuple[str, ...] = ()) -> int:
    return main(["train", SPEC, "--data", str(data / "train"), "--out", str(out), *tiny_args(*overrides), *flags])


def test_a_run_leaves_everything_a_user_looks_at(denoise_2d: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _train(denoise_2d, run) == 0
    for name in ("spec.yaml", "checkpoints/last.pt", "checkpoints/best.pt", "metrics.csv", "train_curves.png",
                 "samples/step_0000003.png", "samples/step_0000006.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    recorded = load_spec(run / "spec.yaml")
    assert recorded.provenance.train_images == 3 and recorded.provenance.val_images == 1
    assert recorded.data.input_percentiles == (0.1, 99.8)  # the normalization the package will declare
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows if r["train_loss"]] == [1, 2, 3, 4, 5, 6]
    assert [float(r["lr"]) for r in rows if r["lr"]] == [1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 1.25e-4]  # staircase
    assert len([r for r in rows if r["val_nrmse"]]) == 2
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert checkpoint["step"] == 6 and not any(k.startswith("module.") for k in checkpoint["model"])


def test_resumed_run_matches_an_uninterrupted_one(denoise_2d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(denoise_2d, tmp_path / "whole") == 0
    real_loss, calls = trainer.compute_loss, []

    def ctrl_c_during_step_4(*args: object) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C: the step finishes, then the run stops
        return real_loss(*args)

    monkeypatch.setattr(trainer, "compute_loss", ctrl_c_during_step_4)
    assert _train(denoise_2d, tmp_path / "split") == 130
    assert "interrupted after step 4" in capsys.readouterr().err
    assert torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=False)["step"] == 4
    monkeypatch.setattr(trainer, "compute_loss", real_loss)
    assert _train(denoise_2d, tmp_path / "split", flags=("--resume",)) == 0

    whole, split = (torch.load(p / "checkpoints" / "last.pt", weights_only=False) for p in (tmp_path / "whole", tmp_path / "split"))
    assert split["step"] == whole["step"] == 6
    for key, value in whole["model"].items():
        assert torch.equal(value, split["model"][key]), key
    for a, b in zip(whole["optimizer"]["state"].values(), split["optimizer"]["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert whole["scheduler"]["last_epoch"] == split["scheduler"]["last_epoch"]
    steps = [int(r["step"]) for r in csv.DictReader((tmp_path / "split" / "metrics.csv").open()) if r["train_loss"]]
    assert steps == [1, 2, 3, 4, 5, 6]  # no duplicated rows after the resume


def test_resume_may_extend_a_run_but_not_change_what_it_learns(denoise_2d: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert _train(denoise_2d, run) == 0
    assert _train(denoise_2d, run, "train.steps=8", flags=("--resume",)) == 0
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["step"] == 8
    before = weights(run / "checkpoints" / "last.pt")
    capsys.readouterr()
    assert _train(denoise_2d, run, "train.steps=10", "train.lr=0.1", flags=("--resume",)) == 2
    err = capsys.readouterr().err
    assert "train.lr" in err and err.count("\n") == 1
    after = weights(run / "checkpoints" / "last.pt")
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_an_existing_run_is_never_overwritten_by_accident(denoise_2d: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert _train(denoise_2d, run) == 0
    spec_text = (run / "spec.yaml").read_text()
    checkpoint = (run / "checkpoints" / "last.pt").read_bytes()
    assert _train(denoise_2d, run, "train.steps=4") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "spec.yaml").read_text() == spec_text and (run / "checkpoints" / "last.pt").read_bytes() == checkpoint
    (run / "notes.txt").write_text("mine")
    assert _train(denoise_2d, run, "train.steps=4", flags=("--overwrite",)) == 0
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["step"] == 4
    assert (run / "notes.txt").read_text() == "mine"  # only what a run writes is replaced


@pytest.mark.parametrize("make_bad, fragment", [
    (lambda d: d / "nowhere", "not found"),
    (lambda d: d, "no source/ folder"),
])
def test_bad_data_is_one_line_and_writes_nothing(denoise_2d: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 make_bad, fragment: str) -> None:
    out = tmp_path / "run"
    code = main(["train", SPEC, "--data", str(make_bad(tmp_path)), "--out", str(out), *tiny_args()])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_three_d_data_for_a_two_d_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gvtnet_zoo.data.synthetic import write_synthetic

    data = write_synthetic("denoise", tmp_path / "d3", 2, 0, (8, 32, 32), seed=0)
    assert main(["train", SPEC, "--data", str(data / "train"), "--out", str(tmp_path / "run"), *tiny_args()]) == 2
    assert "use a 2D spec or 2D data" in capsys.readouterr().err


def test_resume_without_a_run(tmp_path: Path, denoise_2d: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(denoise_2d, tmp_path / "fresh", flags=("--resume",)) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_batch_must_split_over_processes(denoise_2d: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(trainer.distributed, "setup", lambda device: trainer.distributed.Context(0, 3, torch.device("cpu")))
    assert _train(denoise_2d, tmp_path / "run") == 2
    assert "multiple of the process count" in capsys.readouterr().err


def test_training_lowers_the_error_below_the_noisy_input(denoise_2d: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train.steps=150", "train.val_every=150", "train.checkpoint_every=150", "train.log_every=50",
            "model.base_channels=8", "data.batch_size=4", "train.lr_decay_every=1000", "data.val_patches=4"]
    assert _train(denoise_2d, run, *args) == 0
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r["val_nrmse"]]
    val_name = sorted((denoise_2d / "train" / "source").iterdir())[-1].name
    noisy = nrmse(read_image(denoise_2d / "train" / "source" / val_name), read_image(denoise_2d / "train" / "target" / val_name))
    assert float(rows[-1]["val_nrmse"]) < 0.85 * noisy


@pytest.mark.parametrize("best_by", ["loss", "nrmse", "pearson_r"])
def test_best_pt_is_the_validation_that_train_best_by_names(best_by: str, denoise_2d: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 33 item 2: best.pt follows train.best_by, and the run says which step it is and why."""
    run = tmp_path / "run"
    assert _train(denoise_2d, run, "train.val_every=1", f"train.best_by={best_by}") == 0
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r["val_loss"]]
    values = [float(r[f"val_{best_by}"]) for r in rows]
    chosen = values.index(max(values) if best_by == "pearson_r" else min(values))
    step = int(rows[chosen]["step"])
    assert torch.load(run / "checkpoints" / "best.pt", weights_only=False)["step"] == step
    assert f"best.pt is step {step} (" in capsys.readouterr().out


def test_the_model_card_names_the_step_best_pt_holds(tmp_path: Path) -> None:
    from gvtnet_zoo.export.model_card import validation_table

    metrics = tmp_path / "metrics.csv"
    metrics.write_text("step,train_loss,lr,val_loss,val_nrmse,val_pearson_r,elapsed_s\n"
                       "100,,,0.5,0.08,0.78,1\n200,,,0.1,0.07,0.80,2\n300,,,-0.4,0.09,0.77,3\n")
    assert "| best: lowest loss (best.pt) | 300 |" in validation_table(metrics)
    assert "| best: lowest NRMSE (best.pt) | 200 |" in validation_table(metrics, "nrmse")
    assert "| best: highest Pearson r (best.pt) | 200 |" in validation_table(metrics, "pearson_r")
    assert "| last (last.pt) | 300 |" in validation_table(metrics, "nrmse")
