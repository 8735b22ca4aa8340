"""Does bf16 autocast move the validation metrics beyond run-to-run noise?

    python benchmarks/amp_accuracy.py --work /tmp/amp --out benchmarks/results/amp_accuracy.md          # CPU
    python benchmarks/amp_accuracy.py --work /tmp/amp --device cuda --steps 3000 --seeds 0,1,2,3,4

The demo 3D CARE GVTNet is trained on the real nuclei with simulated noise (gvtnet_zoo.data.samples) once
per seed in float32 and once per seed with `train.amp=bf16`, everything else equal. Each run's last
checkpoint predicts the held-out test volume in float32 (the precision of training is what is compared),
scored by the CARE protocol. The table gives mean and standard deviation over seeds per precision, the
difference of the means in units of the seed-to-seed standard deviation, and Welch's two-sided t-test.
On the CPU, bf16 runs oneDNN's bfloat16 kernels: the same number format as on a GPU, not the same kernels.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from scipy.stats import ttest_ind

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import emit  # noqa: E402

from gvtnet_zoo.data.normalization import normalize_input  # noqa: E402
from gvtnet_zoo.data.samples import prepare_denoise_3d  # noqa: E402
from gvtnet_zoo.evaluate.metrics import scores  # noqa: E402
from gvtnet_zoo.image_io.images import read_image  # noqa: E402
from gvtnet_zoo.models import build_model  # noqa: E402
from gvtnet_zoo.spec_loading import load_spec  # noqa: E402
from gvtnet_zoo.train.checkpoint import load_checkpoint  # noqa: E402
from gvtnet_zoo.train.trainer import train  # noqa: E402
from gvtnet_zoo.train.validation import predict_whole  # noqa: E402

SPEC = "demo-gvtnet-care-denoise-3d"
PRECISIONS = ("off", "bf16")
METRICS = ("nrmse", "psnr", "ssim", "pearson_r")


def run_once(data: Path, work: Path, amp: str, seed: int, steps: int, device: str) -> tuple[dict[str, float], float]:
    """Train one run and score its last checkpoint on the test volume: (metrics, training seconds)."""
    every = max(steps // 3, 1)
    spec = load_spec(SPEC, [f"train.amp={amp}", f"train.seed={seed}", f"train.steps={steps}",
                            f"train.val_every={every}", f"train.checkpoint_every={every}"])
    start = time.perf_counter()
    run = train(spec, data / "train", work / "runs" / f"{amp}-seed{seed}", val=data / "val", overwrite=True,
                device=device, command="benchmarks/amp_accuracy.py")
    seconds = time.perf_counter() - start
    model = build_model(spec)
    model.load_state_dict(load_checkpoint(run.last)["model"])
    model = model.to(device).eval()
    source = normalize_input(read_image(data / "test" / "source" / "bottom.tif"), spec.data)
    prediction = predict_whole(model, source, spec.model.size_step(), torch.device(device))
    return scores(prediction, read_image(data / "test" / "target" / "bottom.tif")), seconds


def summary_table(results: dict[str, list[dict[str, float]]]) -> list[str]:
    """Per metric: mean +- sd per precision, the difference in seed-sd units, Welch's p."""
    lines = ["| metric | float32 (mean +- sd) | bf16 (mean +- sd) | bf16 - float32 | in seed-sd units | Welch p |",
             "|---|---:|---:|---:|---:|---:|"]
    for metric in METRICS:
        a = np.array([r[metric] for r in results["off"]])
        b = np.array([r[metric] for r in results["bf16"]])
        spread = float(np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2))
        difference = float(b.mean() - a.mean())
        p = float(ttest_ind(b, a, equal_var=False).pvalue)
        lines.append(f"| {metric} | {a.mean():.4f} +- {a.std(ddof=1):.4f} | {b.mean():.4f} +- {b.std(ddof=1):.4f} | "
                     f"{difference:+.4f} | {difference / spread if spread else float('nan'):+.2f} | {p:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("bench-amp"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, help="append the report to this markdown file")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if len(seeds) < 2:
        raise SystemExit("--seeds needs at least two seeds: the noise is measured between them")
    data = prepare_denoise_3d(args.work / "data")
    results: dict[str, list[dict[str, float]]] = {p: [] for p in PRECISIONS}
    seconds: dict[str, float] = {p: 0.0 for p in PRECISIONS}
    rows = []
    for seed in seeds:  # the precisions take turns, so that a slow spell of the machine hits both
        for amp in PRECISIONS:
            metrics, took = run_once(data, args.work, amp, seed, args.steps, args.device)
            results[amp].append(metrics)
            seconds[amp] += took
            rows.append(f"| {'float32' if amp == 'off' else amp} | {seed} | "
                        + " | ".join(f"{metrics[m]:.4f}" for m in METRICS) + f" | {took:.0f} |")
            print(rows[-1], flush=True)
    hardware = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
        f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    lines = [f"## bf16 autocast and validation metrics ({hardware}; torch {torch.__version__}; {date.today()})", "",
             f"`python benchmarks/amp_accuracy.py --device {args.device} --steps {args.steps} --seeds {args.seeds}`: "
             f"{SPEC}, {args.steps} steps per run, test volume 60x128x256 of the real nuclei (simulated noise), "
             "predicted in float32 from each run's last checkpoint.", "",
             "| training precision | seed | " + " | ".join(METRICS) + " | training seconds |",
             "|---|---:|" + "---:|" * len(METRICS) + "---:|", *rows, "", *summary_table(results), "",
             f"Training time, all seeds: float32 {seconds['off']:.0f} s, bf16 {seconds['bf16']:.0f} s "
             f"({seconds['off'] / seconds['bf16']:.2f}x).", ""]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
