"""The CARE protocol against an independent, loop-by-loop implementation on random data."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
import tifffile

from gvtnet_zoo.cli import main
from gvtnet_zoo.evaluate.metrics import nrmse, pearson_r, psnr, ssim


def _reference(x: np.ndarray, g: np.ndarray) -> dict[str, float]:
    low, high = np.percentile(g, [0.1, 99.9])
    gn = (g - low) / (high - low)
    gc, xc = gn - gn.mean(), x - x.mean()
    alpha = np.linalg.lstsq(xc.reshape(-1, 1), gc.reshape(-1), rcond=None)[0][0]  # least squares, no shortcut
    xs = alpha * xc
    mse = np.mean((gc - xs) ** 2)
    # SSIM: every full 7-wide window visited explicitly, sample (co)variances
    values = []
    ranges = [range(3, s - 3) for s in x.shape]
    for centre in itertools.product(*ranges):
        window = tuple(slice(c - 3, c + 4) for c in centre)
        a, b = xs[window].ravel(), gc[window].ravel()
        va, vb = np.var(a, ddof=1), np.var(b, ddof=1)
        cab = np.cov(a, b, ddof=1)[0, 1]
        c1, c2 = 0.01**2, 0.03**2
        values.append(((2 * a.mean() * b.mean() + c1) * (2 * cab + c2))
                      / ((a.mean() ** 2 + b.mean() ** 2 + c1) * (va + vb + c2)))
    return {"nrmse": np.sqrt(mse), "psnr": 10 * np.log10(1 / mse), "ssim": float(np.mean(values)),
            "pearson_r": np.corrcoef(x.ravel(), g.ravel())[0, 1]}


@pytest.mark.parametrize("shape", [(16, 18), (9, 10, 12)])
def test_protocol_matches_an_independent_implementation(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    g = rng.gamma(2.0, 50.0, size=shape)
    x = 3.0 * g + rng.normal(0, 40, size=shape) + 7.0  # an offset and scale the protocol must not punish
    expected = _reference(x, g)
    assert nrmse(x, g) == pytest.approx(expected["nrmse"], rel=1e-6)
    assert psnr(x, g) == pytest.approx(expected["psnr"], rel=1e-6)
    assert ssim(x, g) == pytest.approx(expected["ssim"], rel=1e-6)
    assert pearson_r(x, g) == pytest.approx(expected["pearson_r"], rel=1e-9)


def test_scale_and_offset_of_the_prediction_do_not_matter() -> None:
    rng = np.random.default_rng(0)
    g, x = rng.random((20, 20)), rng.random((20, 20))
    assert nrmse(5 * x + 3, g) == pytest.approx(nrmse(x, g), rel=1e-9)
    assert ssim(5 * x + 3, g) == pytest.approx(ssim(x, g), rel=1e-9)


def _folder(root: Path, images: dict[str, np.ndarray]) -> Path:
    root.mkdir(parents=True)
    for name, image in images.items():
        tifffile.imwrite(root / f"{name}.tif", image.astype(np.float32))
    return root


def test_evaluate_with_baseline_writes_csv_plot_and_one_tailed_p(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    truth = {f"im{i}": rng.random((24, 24)) for i in range(6)}
    good = {k: v + 0.05 * rng.normal(size=v.shape) for k, v in truth.items()}
    bad = {k: v + 0.5 * rng.normal(size=v.shape) for k, v in truth.items()}
    args = ["evaluate", str(_folder(tmp_path / "good", good)), str(_folder(tmp_path / "truth", truth)),
            "--out", str(tmp_path / "m.csv"), "--baseline", str(_folder(tmp_path / "bad", bad)),
            "--plot", str(tmp_path / "box.png")]
    assert main(args) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert [r["image"] for r in rows] == sorted(truth) and {"pearson_r", "nrmse", "psnr", "ssim"} <= set(rows[0])
    assert (tmp_path / "box.png").stat().st_size > 0
    p_values = {line.split()[0]: float(line.split("p = ")[1]) for line in out.splitlines() if "p = " in line}
    assert all(p < 0.01 for p in p_values.values()), p_values  # the better model wins on every metric
    # and the test is one-tailed: the worse model against the better one is not significant
    assert main([*args[:1], str(tmp_path / "bad"), str(tmp_path / "truth"), "--out", str(tmp_path / "m2.csv"),
                 "--baseline", str(tmp_path / "good")]) == 0
    reverse = {line.split()[0]: float(line.split("p = ")[1]) for line in capsys.readouterr().out.splitlines()
               if "p = " in line}
    assert all(p > 0.99 for p in reverse.values()), reverse


def test_missing_partner_and_shape_mismatch_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ramp = np.arange(64.0).reshape(8, 8)
    truth = _folder(tmp_path / "t", {"a": ramp, "b": ramp})
    pred = _folder(tmp_path / "p", {"a": ramp})
    assert main(["evaluate", str(pred), str(truth), "--out", str(tmp_path / "m.csv")]) == 2
    assert "without a partner" in capsys.readouterr().err and not (tmp_path / "m.csv").exists()
    tifffile.imwrite(pred / "b.tif", np.ones((8, 9), np.float32))
    assert main(["evaluate", str(pred), str(truth), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert "(8, 9)" in err and err.count("\n") == 1
    tifffile.imwrite(pred / "b.tif", ramp.astype(np.float32))
    tifffile.imwrite(truth / "b.tif", np.ones((8, 8), np.float32))
    assert main(["evaluate", str(pred), str(truth), "--out", str(tmp_path / "m.csv")]) == 2
    assert "flat" in capsys.readouterr().err


def test_comparison_table_gives_means_difference_and_one_tailed_p() -> None:
    from scipy.stats import ttest_rel

    from gvtnet_zoo.evaluate.report import comparison_table

    rng = np.random.default_rng(0)
    model = {f"i{k}": {m: float(v) for m, v in zip(["pearson_r", "nrmse", "psnr", "ssim"], rng.uniform(0.5, 1, 4))}
             for k in range(5)}
    baseline = {k: {m: v - 0.1 + 0.01 * rng.normal() for m, v in row.items()} for k, row in model.items()}
    lines = comparison_table(model, baseline, ("GVTNet", "U-Net"))
    assert lines[0].startswith("| metric | GVTNet | U-Net | GVTNet - U-Net |") and len(lines) == 6
    row = dict(zip(["metric", "model", "baseline", "difference", "p"], [c.strip() for c in lines[2].strip("|").split("|")]))
    names = sorted(model)
    a, b = [np.array([d[n][row["metric"]] for n in names]) for d in (model, baseline)]
    assert float(row["model"]) == pytest.approx(a.mean(), abs=1e-4) and float(row["difference"]) == pytest.approx(0.1, abs=0.02)
    assert float(row["p"]) == pytest.approx(ttest_rel(a, b, alternative="greater").pvalue, rel=1e-2)


@pytest.mark.parametrize("where", ["pred", "truth"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_an_image_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            where: str, bad: float) -> None:
    rng = np.random.default_rng(4)
    image = rng.random((16, 16))
    broken = image.copy()
    broken[3, 4] = bad
    pred = _folder(tmp_path / "pred", {"a": broken if where == "pred" else image})
    truth = _folder(tmp_path / "truth", {"a": broken if where == "truth" else image})
    assert main(["evaluate", str(pred), str(truth), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str((pred if where == "pred" else truth) / "a.tif") in err and "NaN or Inf" in err
    assert not (tmp_path / "m.csv").exists()


def test_volumes_thinner_than_the_window_get_ssim_per_plane_and_say_so(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    g = rng.gamma(2.0, 50.0, size=(3, 20, 22))
    x = 2.0 * g + rng.normal(0, 30, size=g.shape)
    value = ssim(x, g)
    assert np.isfinite(value)
    # the mean of 2D SSIMs of the planes, with the prediction scaled over the whole volume
    from gvtnet_zoo.evaluate.metrics import _mean_ssim, scaled_pair

    xs, gs = scaled_pair(x, g)
    assert value == pytest.approx(np.mean([_mean_ssim(xs[i], gs[i]) for i in range(3)]), rel=1e-12)
    thick = rng.gamma(2.0, 50.0, size=(9, 20, 22))
    pred = _folder(tmp_path / "p", {"thin": x, "thick": thick + rng.normal(0, 30, size=thick.shape)})
    truth = _folder(tmp_path / "t", {"thin": g, "thick": thick})
    assert main(["evaluate", str(pred), str(truth), "--out", str(tmp_path / "m.csv")]) == 0
    rows = {r["image"]: r for r in csv.DictReader((tmp_path / "m.csv").open())}
    assert rows["thin"]["ssim_window"] == "7x7 per z plane" and rows["thick"]["ssim_window"] == "7x7x7"
    assert all(np.isfinite(float(r["ssim"])) for r in rows.values())


def test_evaluate_never_replaces_a_file_and_writes_beside_the_predictions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(6)
    truth = {"a": rng.random((16, 16)), "b": rng.random((16, 16))}
    pred = _folder(tmp_path / "pred", {k: v + 0.1 for k, v in truth.items()})
    truth_dir = _folder(tmp_path / "truth", truth)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics.csv").write_text("a training log\n")  # what a run folder holds under that name
    assert main(["evaluate", str(pred), str(truth_dir)]) == 0
    assert (tmp_path / "metrics.csv").read_text() == "a training log\n"
    written = tmp_path / "pred-metrics.csv"
    assert written.is_file() and "wrote " + str(written) in capsys.readouterr().out
    before = written.read_text()
    assert main(["evaluate", str(pred), str(truth_dir)]) == 2
    assert "--overwrite" in capsys.readouterr().err and written.read_text() == before
    assert main(["evaluate", str(pred), str(truth_dir), "--out", str(tmp_path / "metrics.csv")]) == 2
    assert (tmp_path / "metrics.csv").read_text() == "a training log\n"
    assert main(["evaluate", str(pred), str(truth_dir), "--out", str(tmp_path / "metrics.csv"), "--overwrite"]) == 0
    assert (tmp_path / "metrics.csv").read_text().startswith("image,")


def test_plot_without_a_baseline_draws_the_model_and_few_images_are_named(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 33 item 6: --plot needs no baseline (the CSV and a plot of the model alone); with two paired images
    the p-values come with a note on what two images can carry."""
    rng = np.random.default_rng(2)
    truth = {f"im{i}": rng.random((24, 24)) for i in range(2)}
    pred = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in truth.items()}
    folders = [str(_folder(tmp_path / "pred", pred)), str(_folder(tmp_path / "truth", truth))]
    assert main(["evaluate", *folders, "--out", str(tmp_path / "m.csv"), "--plot", str(tmp_path / "box.png")]) == 0
    assert (tmp_path / "m.csv").exists() and (tmp_path / "box.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["evaluate", *folders, "--out", str(tmp_path / "m2.csv"), "--baseline", folders[0]]) == 0
    assert "2 paired images are too few" in capsys.readouterr().out
