"""The README's synthetic walkthrough, rerun: run its command blocks exactly as the README writes them
(tools/readme_commands.py), time each block, and write what the commands printed into the README between the
``walkthrough-figures`` markers and into benchmarks/results/walkthrough.md.

    python benchmarks/walkthrough_figures.py [--work walkthrough-out] [--readme README.md]

Numbers are parsed from the commands' own output: train's validation lines (held-out patches for the loss,
whole held-out images for NRMSE and Pearson r, and the noisy input's NRMSE), its line naming best.pt, and
evaluate's means over the held-out images. Times are wall times of each block in a fresh shell.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- walkthrough-figures: written by benchmarks/walkthrough_figures.py -->", "<!-- /walkthrough-figures -->"
VALIDATION = re.compile(r"step (\d+): val loss (\S+), NRMSE (\S+) \(input (\S+)\), Pearson r (\S+)")
BEST = re.compile(r"best\.pt is step (\d+) \(([^,]+),")
MEAN = re.compile(r"^(\w+)\s+mean (\S+)\s+sd \S+\s+\((\d+) images\)", re.MULTILINE)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import as_it_falls, write_between  # noqa: E402

_spec = importlib.util.spec_from_file_location("readme_commands", ROOT / "tools" / "readme_commands.py")
readme_commands = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_commands)


def run_blocks(blocks: list[str], work: Path) -> tuple[list[float], str]:
    """Each block in ``bash -e`` in ``work`` with this Python's environment first on PATH: (seconds, output)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    seconds, output = [], []
    for block in blocks:
        started = time.perf_counter()
        done = subprocess.run(["bash", "-e", "-c", block], cwd=work, env=env, capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        output.append(done.stdout + done.stderr)
        if done.returncode != 0:
            raise SystemExit(f"the README's block failed (exit {done.returncode}):\n{block}\n{output[-1][-3000:]}")
    return seconds, "\n".join(output)


def summary(seconds: list[float], output: str) -> str:
    """The README's sentence from the commands' output."""
    validations = VALIDATION.findall(output.replace("\r", "\n"))
    best, means = BEST.search(output), {m[0]: (float(m[1]), int(m[2])) for m in MEAN.findall(output)}
    if not validations or best is None or "nrmse" not in means:
        raise SystemExit("the walkthrough's output has no validation, best.pt or evaluate lines to report")
    step, loss, nrmse, noisy, pearson = validations[-1]
    by_step = ", ".join(f"{v[0]}: {float(v[2]):.4f}" for v in validations)
    chosen = next(v for v in validations if v[0] == best.group(1))
    n = means["nrmse"][1]
    return (as_it_falls("walkthrough_figures.py") + f": the first block took {seconds[0]:.0f} s, the second "
            f"{seconds[1]:.0f} s. After {step} steps train printed a held-out NRMSE of {float(nrmse):.4f} (Pearson r "
            f"{float(pearson):.3f}) against {float(noisy):.4f} for the noisy input itself; NRMSE at each validation: "
            f"{by_step}. `best.pt` is step {best.group(1)} ({best.group(2)}; NRMSE {float(chosen[2]):.4f}, validation "
            f"loss {float(chosen[1]):.3f}). `evaluate` on the {n} held-out images: NRMSE {means['nrmse'][0]:.4f}, "
            f"PSNR {means['psnr'][0]:.2f}, SSIM {means['ssim'][0]:.3f}, Pearson r {means['pearson_r'][0]:.3f} "
            f"({n} images of one synthetic kind carry no claim beyond this walkthrough).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("walkthrough-out"))
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    text = summary(*run_blocks(readme_commands.walkthroughs(args.readme.read_text())["synthetic"], args.work))
    print(text)
    write_between(args.readme, START, END, text)
    (ROOT / "benchmarks" / "results" / "walkthrough.md").write_text(f"# The README's synthetic walkthrough\n\n{text}\n")


if __name__ == "__main__":
    main()
