"""Where CPU inference time goes beyond arithmetic (results/cpu_profile.md).

    python benchmarks/cpu_profile.py --out benchmarks/results/cpu_profile.md

1. Fresh memory: one elementwise pass over a 64 MB activation out of place (a new tensor) and in place.
2. Convolutions at batch 1: PyTorch's own choice of kernel (torch.nn.functional.conv3d) against oneDNN
   called directly (torch.mkldnn_convolution), contiguous and channels-last, for layers of the paper's
   networks. PyTorch sends 3D inputs with B*C*D*H <= 20480 to its `slow_conv3d` fallback.
   Then the share of that fallback in whole networks' forward passes (torch.profiler).
3. onnxruntime's node profile of the label-free GVTNet and the fnet U-Net (random weights): the share of
   each operator type in one whole-volume run.
Each time is the median of --repeats calls after two warm-up calls.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import emit  # noqa: E402

from gvtnet_zoo.export.weights import export_onnx  # noqa: E402
from gvtnet_zoo.models import build_model  # noqa: E402
from gvtnet_zoo.spec_loading import load_spec  # noqa: E402

# (C_in, C_out, (D, H, W), kernel, stride): stems, heads, the lower levels where PyTorch's rule misfires
CONVOLUTIONS = [(1, 32, (32, 128, 128), 3, 1), (32, 1, (32, 128, 128), 3, 1), (32, 32, (32, 128, 128), 3, 1),
                (32, 64, (32, 128, 128), 3, 2), (16, 16, (16, 64, 64), 3, 1), (32, 32, (8, 32, 32), 3, 1),
                (128, 128, (4, 16, 16), 3, 1), (32, 32, (8, 32, 32), 1, 1)]


def median_ms(call: Callable[[], object], repeats: int) -> float:
    call()
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def fresh_memory(repeats: int) -> list[str]:
    x = torch.randn(1, 32, 32, 128, 128)
    y = torch.randn_like(x)
    rows = [("clamp(0, 6), a new tensor", lambda: x.clamp(0, 6)), ("clamp_(0, 6), in place", lambda: y.clamp_(0, 6)),
            ("x + y, a new tensor", lambda: x + y), ("y.add_(x), in place", lambda: y.add_(x)),
            ("clone (a plain copy)", lambda: x.clone())]
    return ["| 64 MB activation (1x32x32x128x128) | ms |", "|---|---:|",
            *[f"| {name} | {median_ms(call, repeats):.2f} |" for name, call in rows]]


def convolutions(repeats: int) -> list[str]:
    lines = ["| C_in -> C_out | input D x H x W | kernel, stride | B*C*D*H | conv3d | oneDNN direct | "
             "conv3d channels-last | oneDNN channels-last |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for c_in, c_out, size, kernel, stride in CONVOLUTIONS:
        x = torch.randn(1, c_in, *size)
        w = torch.randn(c_out, c_in, *(kernel,) * 3)
        pad = kernel // 2
        xl, wl = (t.contiguous(memory_format=torch.channels_last_3d) for t in (x, w))
        with torch.no_grad():
            times = [median_ms(lambda a=a, b=b: F.conv3d(a, b, None, stride, pad), repeats) for a, b in ((x, w), (xl, wl))]
            direct = [median_ms(lambda a=a, b=b: torch.mkldnn_convolution(a, b, None, [pad] * 3, [stride] * 3, [1] * 3, 1),
                                repeats) for a, b in ((x, w), (xl, wl))]
        lines.append(f"| {c_in} -> {c_out} | {' x '.join(map(str, size))} | {kernel}, {stride} | {c_in * size[0] * size[1]} | "
                     f"{times[0]:.2f} | {direct[0]:.2f} | {times[1]:.2f} | {direct[1]:.2f} |")
    return lines


def fallback_share(spec_name: str, shape: list[int]) -> tuple[float, float]:
    """(total ms, ms in slow_conv3d) of one eager forward of (1, 1, *shape), contiguous, by torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    spec = load_spec(spec_name)
    network = build_model(spec).eval()
    x = torch.randn(1, 1, *shape)
    with torch.no_grad():
        network(torch.zeros(1, 1, *[2 * s for s in spec.model.size_step()]))
        with profile(activities=[ProfilerActivity.CPU]) as recorded:
            network(x)
    events = recorded.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1000
    return total, sum(e.self_cpu_time_total for e in events if e.key == "aten::slow_conv3d_forward") / 1000


def fallback_table(shape: list[int]) -> list[str]:
    lines = ["| network (eager, contiguous, batch 1) | forward ms | in slow_conv3d | share |", "|---|---:|---:|---:|"]
    for name in ("demo-gvtnet-care-denoise-3d", "gvtnet-label-free", "unet-fnet-label-free", "gvtnet-care-denoise"):
        total, fallback = fallback_share(name, shape)
        lines.append(f"| {name} | {total:.0f} | {fallback:.0f} | {100 * fallback / total:.0f}% |")
    return lines


def onnx_profile(spec_name: str, shape: list[int]) -> dict[str, float]:
    """Milliseconds per operator type in one onnxruntime run of (1, 1, *shape)."""
    import onnxruntime

    spec = load_spec(spec_name)
    small = torch.zeros(1, 1, *[2 * s for s in spec.model.size_step()])
    path = export_onnx(build_model(spec).eval(), small, Path(tempfile.mkdtemp()) / "model.onnx")
    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "profile")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).normal(size=(1, 1, *shape)).astype(np.float32)
    session.run(None, {"input": small.numpy()})
    session.run(None, {"input": image})
    events = json.loads(Path(session.end_profiling()).read_text())
    last = [e for e in events if e.get("name") == "model_run"][-1]
    spent: dict[str, float] = collections.defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and last["ts"] <= event["ts"] <= last["ts"] + last["dur"] \
                and event["name"].endswith("_kernel_time"):
            spent[event["args"]["op_name"]] += event["dur"] / 1000
    return dict(spent)


def onnx_table(shape: list[int]) -> list[str]:
    profiles = {name: onnx_profile(name, shape) for name in ("gvtnet-label-free", "unet-fnet-label-free")}
    operators = sorted({op for p in profiles.values() for op in p}, key=lambda op: -max(p.get(op, 0) for p in profiles.values()))
    lines = ["| operator | " + " | ".join(f"{name} ms (share)" for name in profiles) + " |", "|---|" + "---:|" * len(profiles)]
    for op in operators:
        cells = []
        for profile in profiles.values():
            total = sum(profile.values())
            cells.append(f"{profile[op]:.1f} ({100 * profile[op] / total:.0f}%)" if op in profile else "-")
        if any(profile.get(op, 0) >= 0.5 for profile in profiles.values()):
            lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines.append("| all nodes | " + " | ".join(f"{sum(p.values()):.1f}" for p in profiles.values()) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--onnx-volume", default="32x128x128")
    parser.add_argument("--out", type=Path, help="append the report to this markdown file")
    args = parser.parse_args()
    shape = [int(s) for s in args.onnx_volume.split("x")]
    lines = [f"## Where CPU inference time goes ({platform.machine()}, {torch.get_num_threads()} threads; "
             f"torch {torch.__version__}; {date.today()})", "",
             f"`python benchmarks/cpu_profile.py --repeats {args.repeats} --onnx-volume {args.onnx_volume}`", "",
             "### Fresh memory against in place", "", *fresh_memory(args.repeats), "",
             "### Convolutions at batch 1: PyTorch's choice of kernel against oneDNN (ms)", "",
             *convolutions(args.repeats), "",
             f"Time in the fallback within whole networks, {args.onnx_volume} (torch.profiler, self CPU time):", "",
             *fallback_table(shape), "",
             f"### onnxruntime node profile, whole {args.onnx_volume} volume", "", *onnx_table(shape), ""]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
