"""Training throughput: steps/s of the real training step, and the share of each step spent waiting for data.

    python benchmarks/train_throughput.py                          # the demo specs, CPU, 0 and 2 workers
    python benchmarks/train_throughput.py --specs gvtnet-label-free,unet-fnet-label-free --workers 0 \
        --variants fp32,fp32+cl,bf16,bf16+cl --steps 3 --warmup 1
    python benchmarks/train_throughput.py --device cuda --specs gvtnet-label-free --workers 4 \
        --variants fp32,bf16,bf16+cl,bf16+cl+compile

Variants run side by side in one run, each spec under each variant in turn: a precision (fp32, bf16
or fp16 autocast, as `train.amp`), then optionally +cl (channels-last memory, as `train.channels_last`)
and +compile (torch.compile of the forward pass; the warm-up steps include the compilation). The
speed-up column is against the spec's first variant.

Data: synthetic pairs from gvtnet_zoo.data.synthetic (4 images, normalized as in training). Each run
times --steps steps after --warmup steps: the wait for the next batch and the training step itself
(forward, loss, backward, Adam), synchronized on CUDA. One markdown row per spec, worker count and variant.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date
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
from gvtnet_zoo.models.layout import channels_last_input, to_channels_last
from gvtnet_zoo.train.losses import compute_loss
from gvtnet_zoo.train.precision import autocast

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


def parse_variant(text: str) -> tuple[str, bool, bool]:
    """'bf16+cl+compile' -> ('bf16', channels_last=True, compiled=True); fp32 is train.amp 'off'."""
    precision, *options = text.split("+")
    if precision not in ("fp32", "bf16", "fp16") or set(options) - {"cl", "compile"}:
        raise SystemExit(f"variant {text!r}: a precision (fp32, bf16, fp16), then optionally +cl and +compile")
    return ("off" if precision == "fp32" else precision), "cl" in options, "compile" in options


def measure(name: str, device: torch.device, workers: int, steps: int, warmup: int, variant: str) -> dict[str, float]:
    amp, channels_last, compiled = parse_variant(variant)
    spec = load_spec(name)
    torch.manual_seed(0)
    model = build_model(spec).to(device)
    if channels_last:
        to_channels_last(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.train.lr, betas=spec.train.betas)
    sampler = PatchSampler(_pairs(spec), spec.data.patch_size, 0, flips=True, rotations=spec.data.rotations)
    loader = DataLoader(sampler, batch_size=spec.data.batch_size, sampler=range((steps + warmup) * spec.data.batch_size),
                        num_workers=workers, pin_memory=device.type == "cuda")
    with_scale = spec.train.loss == "laplace_nll"
    forward = model.forward_with_scale if with_scale else model
    if compiled:
        forward = torch.compile(forward)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    data_time = step_time = 0.0
    batches = iter(loader)
    for i in range(steps + warmup):
        start = time.perf_counter()
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = channels_last_input(x)
        sync()
        fetched = time.perf_counter()
        with autocast(amp, device):
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
    parser.add_argument("--variants", default="fp32",
                        help="comma-separated: fp32|bf16|fp16, each optionally +cl (channels-last) and +compile")
    parser.add_argument("--out", type=Path, help="append the table to this markdown file")
    args = parser.parse_args()
    device = torch.device(args.device)
    variants = args.variants.split(",")
    for variant in variants:
        parse_variant(variant)
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    lines = [f"Device: {hardware}; torch {torch.__version__}; {date.today()}; {args.steps} timed steps after {args.warmup} warm-up "
             "steps; variants side by side in one run.", "",
             f"`python benchmarks/train_throughput.py --device {args.device} --specs {args.specs} --workers {args.workers} "
             f"--steps {args.steps} --warmup {args.warmup} --variants {args.variants}`", "",
             "| spec | batch x patch | workers | variant | steps/s | s/step | data share of a step | speed-up |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for name in args.specs.split(","):
        spec = load_spec(name)
        for workers in (int(w) for w in args.workers.split(",")):
            first = None
            for variant in variants:
                result = measure(name, device, workers, args.steps, args.warmup, variant)
                first = first or result["steps_per_s"]
                lines.append(f"| {name} | {spec.data.batch_size} x {'x'.join(map(str, spec.data.patch_size))} | "
                             f"{workers} | {variant} | {result['steps_per_s']:.3g} | {1 / result['steps_per_s']:.3g} | "
                             f"{100 * result['data_share']:.1f}% | {result['steps_per_s'] / first:.2f}x |")
                print(lines[-1], flush=True)
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
