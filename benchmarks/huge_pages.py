"""PyTorch on the CPU with and without transparent huge pages for its large tensors, side by side.

    python benchmarks/huge_pages.py --out benchmarks/results/huge_pages.md
    python benchmarks/huge_pages.py --volume 32x128x128 --train-specs '' --repeats 3

`gvtnet-zoo` sets THP_MEM_ALLOC_ENABLE=1 where the kernel grants huge pages (gvtnet_zoo/huge_pages.py).
Every row here runs in a fresh process with the variable set to 0 or 1 explicitly (PyTorch reads it once),
the two settings taking turns. Inference: whole volumes of random data through randomly initialized
paper models in eager PyTorch, channels-last (gvtnet-zoo's own eager paths: global context, CPU training)
and contiguous (packaged TorchScript and state-dict weights as the zoo's runners feed them): the first
pass after a small warm-up, and the mean of the passes after it (a folder of volumes, or tiles). Training:
the real step of benchmarks/train_throughput.py. Peak memory: the process's maximum resident set.
onnxruntime allocates through its own arena and is not affected.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import emit  # noqa: E402

from gvtnet_zoo.huge_pages import kernel_setting  # noqa: E402

GiB = 1024**3
SETTINGS = ("0", "1")


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def infer(spec_name: str, volume: list[int], layout: str, passes: int) -> dict[str, Any]:
    """Seconds of each of ``passes`` whole-volume passes (inference_modes.measure) and the process's peak memory."""
    from inference_modes import measure

    mode = "whole-channels-last" if layout == "channels-last" else "whole"
    return {"seconds": measure(spec_name, mode, volume, [], "cpu", passes)["passes"], "peak_bytes": _max_rss_bytes()}


def train(spec_name: str, variant: str, steps: int, warmup: int) -> dict[str, Any]:
    """Steps/s of the training step (benchmarks/train_throughput.py), no loader workers."""
    import torch
    from train_throughput import measure

    result = measure(spec_name, torch.device("cpu"), 0, steps, warmup, variant)
    return {"steps_per_s": result["steps_per_s"], "peak_bytes": _max_rss_bytes()}


def in_subprocess(setting: str, job: list[Any]) -> dict[str, Any]:
    """Run ``job`` ([kind, *arguments]) in a fresh process with THP_MEM_ALLOC_ENABLE=setting."""
    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": setting}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{job} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", default="gvtnet-label-free,unet-fnet-label-free", help="models for inference")
    parser.add_argument("--volume", default="64x256x256")
    parser.add_argument("--layouts", default="channels-last,contiguous")
    parser.add_argument("--passes", type=int, default=4, help="forward passes per process (the first is reported apart)")
    parser.add_argument("--train-specs", default="gvtnet-label-free,unet-fnet-label-free,gvtnet-care-denoise")
    parser.add_argument("--train-variants", default="fp32+cl,bf16+cl", help="as in train_throughput.py")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="processes per row and setting; the best counts")
    parser.add_argument("--out", type=Path, help="append the report to this markdown file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *job = json.loads(args.child)
        print(json.dumps(infer(*job) if kind == "infer" else train(*job)))
        return
    if args.passes < 2:
        raise SystemExit("--passes must be at least 2: the first pass is reported apart from the later ones")
    volume = [int(v) for v in args.volume.split("x")]
    setting = (kernel_setting() or "absent").strip()
    command = (f"python benchmarks/huge_pages.py --specs {args.specs} --volume {args.volume} --layouts {args.layouts} "
               f"--passes {args.passes} --train-specs '{args.train_specs}' --train-variants {args.train_variants} "
               f"--steps {args.steps} --warmup {args.warmup} --repeats {args.repeats}")
    lines = [f"## Huge pages for PyTorch's CPU tensors ({platform.machine()}, {os.cpu_count()} cores; {date.today()})", "",
             f"`{command}`", "",
             (f"Kernel THP setting: `{setting}`. Best of {args.repeats} fresh processes per row, the two settings "
              "taking turns."), "",
             "| workload | huge pages | first pass (s) | later passes (s, mean) | steps/s | peak memory (GiB) |",
             "|---|---|---:|---:|---:|---:|"]
    later: dict[tuple[str, str, str], float] = {}
    speedups: list[str] = []
    for layout in args.layouts.split(","):
        for spec_name in args.specs.split(","):
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SETTINGS}
            for _ in range(args.repeats):
                for setting in SETTINGS:
                    runs[setting].append(in_subprocess(setting, ["infer", spec_name, volume, layout, args.passes]))
            for setting in SETTINGS:
                first = min(r["seconds"][0] for r in runs[setting])
                mean_later = min(sum(r["seconds"][1:]) / (args.passes - 1) for r in runs[setting])
                later[(layout, spec_name, setting)] = mean_later
                peak = min(r["peak_bytes"] for r in runs[setting])
                lines.append(f"| {spec_name} {args.volume} {layout} | {'on' if setting == '1' else 'off'} | {first:.2f} | "
                             f"{mean_later:.2f} | | {peak / GiB:.2f} |")
                print(lines[-1], flush=True)
            speedups.append(f"- {spec_name} {layout}, later passes: "
                            f"{later[(layout, spec_name, '0')] / later[(layout, spec_name, '1')]:.2f}x")
    for spec_name in filter(None, args.train_specs.split(",")):
        for variant in args.train_variants.split(","):
            runs = {s: [] for s in SETTINGS}
            for _ in range(args.repeats):
                for setting in SETTINGS:
                    runs[setting].append(in_subprocess(setting, ["train", spec_name, variant, args.steps, args.warmup]))
            best = {s: max(runs[s], key=lambda r: r["steps_per_s"]) for s in SETTINGS}
            for setting in SETTINGS:
                lines.append(f"| train {spec_name} {variant} | {'on' if setting == '1' else 'off'} | | | "
                             f"{best[setting]['steps_per_s']:.3g} | {min(r['peak_bytes'] for r in runs[setting]) / GiB:.2f} |")
                print(lines[-1], flush=True)
            speedups.append(f"- train {spec_name} {variant}: {best['1']['steps_per_s'] / best['0']['steps_per_s']:.2f}x")
    lines += ["", "Speed-up with huge pages (same run):", "", *speedups]
    pair = ("gvtnet-label-free", "unet-fnet-label-free")
    for layout in args.layouts.split(","):
        for setting in SETTINGS:
            if all((layout, name, setting) in later for name in pair):
                ratio = later[(layout, pair[0], setting)] / later[(layout, pair[1], setting)]
                lines.append(f"- label-free GVTNet / fnet U-Net, {layout}, huge pages {'on' if setting == '1' else 'off'}, "
                             f"later passes: {ratio:.2f}")
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
