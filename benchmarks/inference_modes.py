"""Inference time and peak memory: paper models whole, and the CARE GVTNet tiled and by global context.

    python benchmarks/inference_modes.py --out docs/performance.md                 # CPU
    python benchmarks/inference_modes.py --device cuda --sizes 32x128x128,64x512x512

Every measurement runs in a fresh subprocess (peak memory of one thing at a time), on random weights
(speed and memory do not depend on them) and a random volume, after one warm-up pass on a small
volume. CPU peak = growth of the process's maximum resident set during the measured call; CUDA peak
= torch.cuda.max_memory_allocated. Tiled and global-context runs use the same tiles and cores
(gvtnet_zoo.predict.global_context): "tiled" lets each tile attend to itself only.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import emit  # noqa: E402

from gvtnet_zoo.models import build_model  # noqa: E402
from gvtnet_zoo.predict.global_context import ContextNetwork  # noqa: E402
from gvtnet_zoo.spec_loading import load_spec  # noqa: E402

GiB = 1024**3


def _peak_bytes(device: torch.device, rss_before: int) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before


def measure(spec_name: str, mode: str, shape: list[int], tile: list[int], device_name: str) -> dict[str, float]:
    """One measurement, in this process: seconds and peak bytes of predicting a (1, 1, *shape) volume."""
    device = torch.device(device_name)
    torch.manual_seed(0)
    spec = load_spec(spec_name)
    image = np.random.default_rng(0).normal(size=(1, 1, *shape)).astype(np.float32)
    tiles = dict(zip("zyx", tile))
    if mode == "whole":
        network = build_model(spec).eval().to(device)
        run = lambda: network(torch.from_numpy(image).to(device)).cpu()  # noqa: E731
        warm = lambda: network(torch.zeros(1, 1, *[2 * s for s in spec.model.size_step()], device=device))  # noqa: E731
    else:
        context = ContextNetwork.build(spec, device=device_name)
        run = lambda: context.predict(image, tiles, global_context=mode == "global")  # noqa: E731
        small = np.zeros((1, 1, *[2 * s for s in spec.model.size_step()]), np.float32)
        warm = lambda: context.predict(small, tiles, global_context=mode == "global")  # noqa: E731
    with torch.no_grad():
        warm()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_bytes": _peak_bytes(device, rss_before)}


def in_subprocess(spec_name: str, mode: str, shape: list[int], tile: list[int], device: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", json.dumps([spec_name, mode, shape, tile, device])]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="32x128x128,64x256x256", help="volumes for the whole-volume comparison")
    parser.add_argument("--models", default="gvtnet-label-free,unet-fnet-label-free,gvtnet-care-denoise")
    parser.add_argument("--context-volume", default="64x288x288", help="volume for tiled vs global context (CARE)")
    parser.add_argument("--tile", default="64x96x96", help="tile for tiled vs global context")
    parser.add_argument("--out", type=Path, help="append the report to this markdown file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*json.loads(args.child))))
        return

    def dims(text: str) -> list[int]:
        return [int(v) for v in text.split("x")]

    hardware = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    lines = [f"## Inference: time and peak memory ({args.device}: {hardware}; {date.today()})", "",
             f"`python benchmarks/inference_modes.py --device {args.device} --sizes {args.sizes} "
             f"--context-volume {args.context_volume} --tile {args.tile}`", "",
             "| model | volume | mode | seconds | peak memory (GiB) |", "|---|---|---|---:|---:|"]
    whole: dict[tuple[str, str], dict[str, float]] = {}
    for size in args.sizes.split(","):
        for model in args.models.split(","):
            result = whole[(model, size)] = in_subprocess(model, "whole", dims(size), [], args.device)
            lines.append(f"| {model} | {size} | whole | {result['seconds']:.2f} | {result['peak_bytes'] / GiB:.2f} |")
            print(lines[-1], flush=True)
    volume, tile = dims(args.context_volume), dims(args.tile)
    ratio = np.prod(volume) / np.prod(tile)
    context = {mode: in_subprocess("gvtnet-care-denoise", mode, volume, tile if mode != "whole" else [], args.device)
               for mode in ("whole", "tiled", "global")}
    for mode, result in context.items():
        label = mode if mode == "whole" else f"{mode}, tiles {args.tile}"
        lines.append(f"| gvtnet-care-denoise | {args.context_volume} ({ratio:.1f}x the tile) | {label} | "
                     f"{result['seconds']:.2f} | {result['peak_bytes'] / GiB:.2f} |")
        print(lines[-1], flush=True)
    lines += ["", "Ratios (same run):", ""]
    for size in args.sizes.split(","):
        if ("gvtnet-label-free", size) in whole and ("unet-fnet-label-free", size) in whole:
            r = whole[("gvtnet-label-free", size)]["seconds"] / whole[("unet-fnet-label-free", size)]["seconds"]
            lines.append(f"- {size}: label-free GVTNet / fnet U-Net time = {r:.2f} (target <= 0.9)")
    memory = context["global"]["peak_bytes"] / max(context["tiled"]["peak_bytes"], 1)
    lines.append(f"- global context / plain tiles on {args.context_volume}: peak memory {memory:.2f}x (target <= 1.5), "
                 f"time {context['global']['seconds'] / context['tiled']['seconds']:.2f}x; whole needs "
                 f"{context['whole']['peak_bytes'] / max(context['global']['peak_bytes'], 1):.1f}x the memory of global context")
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
