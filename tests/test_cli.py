"""The gvtnet-zoo command: summary tables, one-line errors with exit code 2, the demo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gvtnet_zoo.cli import main

from .conftest import PAPER_SPECS


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name, expected", [
    ("gvtnet-label-free", "6,172,225"),
    ("gvtnet-care-denoise", "1,347,360"),
    ("gvtnet-flywing-projection", "538,873"),
    ("unet-fnet-label-free", "23,280,769"),
    ("unet-care-denoise", "996,802"),
])
def test_summary_last_line_is_the_parameter_count(capsys: pytest.CaptureFixture[str], name: str, expected: str) -> None:
    code, out, _ = _run(capsys, "summary", f"model_specs/{name}.yaml")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[-1] == f"trainable parameters: {expected}"
    block_counts = [int(row.split()[-1].replace(",", "")) for row in lines[3:-1]]
    assert sum(block_counts) == int(expected.replace(",", ""))  # the blocks partition the network


def test_summary_shows_output_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "summary", "gvtnet-care-denoise")
    assert re.search(r"bottom\s+Sequential\s+1x128x4x16x16\s+66,048", out)
    assert re.search(r"decoder\.1\s+DecoderLevel\s+1x32x16x64x64", out)


def test_summary_with_override(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "summary", "gvtnet-care-denoise", "--set", "model.sigma_head=false",
                        "--set", "train.loss=mae")
    assert code == 0 and out.strip().endswith("trainable parameters: 1,347,328")


@pytest.mark.parametrize("argv, fragment", [
    (["summary", "missing.yaml"], "spec file missing.yaml not found"),
    (["summary", "gvtnet-label-free", "--set", "model.dpth=3"], "unknown key 'model.dpth'"),
    (["summary", "gvtnet-label-free", "--set", "oops"], "--set expects section.key=value"),
])
def test_user_errors_are_one_line_with_exit_code_2(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "gvtnet_zoo", "summary", "unet-care-denoise"],
                            capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.strip().endswith("trainable parameters: 996,802")
    bad = subprocess.run([sys.executable, "-m", "gvtnet_zoo", "summary", "nope.yaml"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_demo_runs_the_whole_tool_on_real_data(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _run(capsys, "demo", "--out", str(tmp_path), "--steps", "3")
    assert code == 0
    report = (tmp_path / "demo.md").read_text()
    for name in PAPER_SPECS:
        assert re.search(rf"\| {name} \| [\d,]+ \| [\d,]+ \| yes \|", report)
    assert "ndev-sampledata" in report and "Allen Institute" in report
    for name in ("gvtnet.zip", "u-net.zip", "metrics.csv", "metrics.png", "comparison.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert sorted(p.name for p in (tmp_path / "predictions" / "gvtnet").iterdir()) == ["t08.tif", "t09.tif"]
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 3  # header + two test time points
    assert "one-tailed paired t-test" in out


def test_every_option_of_package_synth_and_predict_tiles_says_what_it_does() -> None:
    """Issue 33 item 9: no option without help; a run of one tile says "1 tile"."""
    from gvtnet_zoo.cli import build_parser
    from gvtnet_zoo.predict.run import PredictionSummary

    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name in ("package", "synth", "predict"):
        silent = [a.option_strings[0] for a in commands[name]._actions if a.option_strings and not a.help]
        assert silent == [], f"{name}: {silent}"
    assert ", 1 tile," in PredictionSummary(1, 10, 1.0, "cpu", "onnx", 1).line()
