"""Whole-volume prediction with a paper model: time and peak memory, versus what N x N attention would need.

    python benchmarks/whole_volume_memory.py                      # CARE GVTNet, 1x1x64x256x256, CPU
    python benchmarks/whole_volume_memory.py --device cuda --repeats 5
    python benchmarks/whole_volume_memory.py --spec gvtnet-label-free --shape 32,512,512

Prints one markdown table row per run (append them with --out FILE). CPU peak memory is this fresh
process's high-water mark of resident memory (VmHWM, PyTorch and the model included, as
benchmarks/inference_modes.py measures it); CUDA peak memory is torch.cuda.max_memory_allocated. Random weights: speed and memory do not depend on them.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_modes import process_memory  # noqa: E402

from gvtnet_zoo import build_model, load_spec  # noqa: E402
from gvtnet_zoo.nn import GlobalAttention  # noqa: E402

GiB = 1024**3


def largest_dense_attention_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the biggest N_q x N_k float32 matrix a softmax-style attention would build, per head."""
    largest = 0

    def record(module: GlobalAttention, inputs: tuple[torch.Tensor], output: tuple[torch.Tensor, torch.Tensor]) -> None:
        nonlocal largest
        n_keys = inputs[0][0, 0].numel()
        n_queries = output[1][0, 0].numel()
        largest = max(largest, n_queries * n_keys * 4)

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, GlobalAttention)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="gvtnet-care-denoise")
    parser.add_argument("--shape", default="64,256,256", help="spatial size, comma-separated")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, help="append the result row to this markdown file")
    args = parser.parse_args()

    device = torch.device(args.device)
    spec = load_spec(args.spec)
    model = build_model(spec).eval().to(device)
    shape = [int(s) for s in args.shape.split(",")]
    x = torch.randn(1, 1, *shape, device=device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    dense = largest_dense_attention_bytes(model, x)  # also the warm-up pass
    times = []
    with torch.no_grad():
        for _ in range(args.repeats):
            start = time.perf_counter()
            y = model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak, what = torch.cuda.max_memory_allocated(), "CUDA max allocated"
        hardware = torch.cuda.get_device_name(device)
    else:
        peak, what = process_memory("VmHWM"), "VmHWM of the process"
        hardware = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    assert y.shape[2:] == x.shape[2:]
    row = (f"| {spec.name} | {'x'.join(map(str, x.shape))} | {hardware} | {min(times):.2f} s "
           f"(best of {args.repeats}) | {peak / GiB:.2f} GiB ({what}) | {dense / GiB:,.1f} GiB |")
    header = ("| spec | input | device | forward time | peak memory | largest N_q x N_k matrix (per head) |\n"
              "|---|---|---|---|---|---|")
    print(header)
    print(row)
    if args.out:
        new = not args.out.exists()
        with args.out.open("a") as handle:
            handle.write((header + "\n" if new else "") + row + "\n")


if __name__ == "__main__":
    main()
