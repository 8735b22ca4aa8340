"""Training throughput: steps/s of the real training step, and the share of each step spent waiting for data.

    python benchmarks/train_throughput.py                          # the demo specs, CPU, 0 and 2 workers
    python benchmarks/train_throughput.py --device cuda --specs gvtnet-care-denoise,unet-care-denoise --amp bf16
    python benchmarks/train_throughput.py --device cuda --specs gvtnet-label-free --amp bf16 --channels-last --compile

Data: synthetic pairs from gvtnet_zoo.data.synthetic (4 images, normalized as in training). Each run
times --steps steps after --warmup steps: the wait for the next batch and the training step itself
(forward, loss, backward, Adam), synchronized on CUDA. One markdown row per spec and worker count.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from report import emit  # benchmarks/report.py (scripts run from this folder)
from torch.utils.data import DataLoader

from gvtnet_zoo import build_model, load_spec
from gvtnet_zoo.data.normalization import normalize_input, normalize_target
from gvtnet_zoo.data.pairs import ImagePair
from gvtnet_zoo.data.patches import PatchSampler
from gvtnet_zoo.data.synthetic import synthetic_pair
from gvtnet_zoo.train.losses import compute_loss

DEMO_SPECS = "demo-gvtnet-label-free-2d,demo-unet-label-free-2d,demo-gvtnet-care-denoise-3d,demo-gvtnet-projection"


def _pairs(spec, images: int = 4) -> list[ImagePair]:
    patch = spec.data.patch_size
    task = "projection" if spec.model.architecture == "gvtnet_projection" else "denoise"
    shape = [patch[0]] + [4 * p for p in patch[1:]] if len(patch) == 3 else [4 * p for p in patch]
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(images):
        source, target = synthetic_pair(task, shape, rng)
        pairs.append(ImagePair(str(i), normalize_input(source, spec.data), normalize_target(target, spec.data)))
    return pairs


def measure(name: str, device: torch.device, workers: int, steps: int, warmup: int, amp: str,
            channels_last: bool = False, compiled: bool = False) -> dict[str, float]:
    spec = load_spec(name)
    model = build_model(spec).to(device)
    layout = torch.channels_last if spec.model.input_dims == 2 else torch.channels_last_3d
    if channels_last:
        model = model.to(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.train.lr, betas=spec.train.betas)
    sampler = PatchSampler(_pairs(spec), spec.data.patch_size, 0, flips=True, rotations=spec.data.rotations)
    loader = DataLoader(sampler, batch_size=spec.data.batch_size, sampler=range((steps + warmup) * spec.data.batch_size),
                        num_workers=workers, pin_memory=device.type == "cuda")
    with_scale = spec.train.loss == "laplace_nll"
    forward = model.forward_with_scale if with_scale else model
    if compiled:
        forward = torch.compile(forward)  # the warm-up steps include the compilation
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
                if device.type == "cuda" and amp != "off" else torch.autocast("cpu", enabled=False))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    data_time = step_time = 0.0
    batches = iter(loader)
    for i in range(steps + warmup):
        start = time.perf_counter()
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.to(memory_format=layout)
        sync()
        fetched = time.perf_counter()
        with autocast:
            loss = compute_loss(spec.train.loss, forward(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        done = time.perf_counter()
        if i >= warmup:
            data_time += fetched - start
            step_time += done - fetched
    total = data_time + step_time
    return {"steps_per_s": steps / total, "data_share": data_time / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", default=DEMO_SPECS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true", help="channels-last (3D) memory format")
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward pass")
    parser.add_argument("--out", type=Path, help="append the table to this markdown file")
    args = parser.parse_args()
    device = torch.device(args.device)
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    lines = [f"Device: {hardware}; torch {torch.__version__}; amp {args.amp}; channels-last {args.channels_last}; "
             f"torch.compile {args.compile}; {args.steps} timed steps after "
             f"{args.warmup} warm-up steps.", "",
             "| spec | batch x patch | workers | steps/s | s/step | data share of a step |", "|---|---|---:|---:|---:|---:|"]
    for name in args.specs.split(","):
        spec = load_spec(name)
        for workers in (int(w) for w in args.workers.split(",")):
            result = measure(name, device, workers, args.steps, args.warmup, args.amp, args.channels_last, args.compile)
            lines.append(f"| {name} | {spec.data.batch_size} x {'x'.join(map(str, spec.data.patch_size))} | {workers} | "
                         f"{result['steps_per_s']:.3g} | {1 / result['steps_per_s']:.3g} | {100 * result['data_share']:.1f}% |")
            print(lines[-1], flush=True)
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
