"""Inference time and peak memory: paper models whole, and the CARE GVTNet tiled and by global context.

    python benchmarks/inference_modes.py --out benchmarks/results/inference_modes.md   # CPU; then performance_doc.py
    python benchmarks/inference_modes.py --device cuda --sizes 32x128x128,64x512x512

Every measurement runs in a fresh subprocess (peak memory of one thing at a time), on random weights
(speed and memory do not depend on them) and a random volume, after one warm-up pass on a small
volume. Whole volumes run in eager PyTorch (contiguous or channels-last memory) and in onnxruntime
(the package's default weights, exported as `gvtnet-zoo package` exports them). CPU peak = the fresh
process's high-water mark of resident memory (VmHWM in /proc/self/status): everything it held at its
worst, PyTorch and the model included, so configurations compare as a user would see them; the
resident memory before the measured call is reported beside it. CUDA peak = torch.cuda.max_memory_allocated.
Tiled and global-context runs use the same tiles and cores (gvtnet_zoo.predict.global_context):
"tiled" lets each tile attend to itself only.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import emit  # noqa: E402

from gvtnet_zoo.models import build_model  # noqa: E402
from gvtnet_zoo.models.layout import channels_last_input, to_channels_last  # noqa: E402
from gvtnet_zoo.predict.budget import context_plan  # noqa: E402
from gvtnet_zoo.predict.global_context import ContextNetwork  # noqa: E402
from gvtnet_zoo.predict.plan import axis_windows  # noqa: E402
from gvtnet_zoo.spec_loading import load_spec  # noqa: E402

GiB = 1024**3
PEAK = {False: "VmHWM of a fresh process", True: "CUDA max allocated"}


def process_memory(field: str) -> int:
    """Bytes of a /proc/self/status memory field: VmHWM (peak resident), VmRSS (resident now)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return process_memory("VmHWM")


def _onnx_session(network: torch.nn.Module, small: torch.Tensor, device_name: str) -> Any:
    import tempfile

    import onnxruntime

    from gvtnet_zoo.export.weights import export_onnx

    path = export_onnx(network, small, Path(tempfile.mkdtemp()) / "model.onnx")
    providers = ["CUDAExecutionProvider"] if device_name.startswith("cuda") else ["CPUExecutionProvider"]
    session = onnxruntime.InferenceSession(str(path), providers=providers)
    if session.get_providers()[0] != providers[0]:  # onnxruntime falls back to the CPU without a word
        raise SystemExit(f"onnxruntime's {providers[0]} did not load here")
    return session


def measure(spec_name: str, mode: str, shape: list[int], tile: list[int], device_name: str,
            passes: int = 1) -> dict[str, Any]:
    """One measurement, in this process: seconds and peak bytes of predicting a (1, 1, *shape) volume.

    ``mode``: whole (eager PyTorch), whole-channels-last, whole-onnxruntime, tiled or global. With
    ``passes`` > 1 the volume is predicted that many times: "seconds" is the first, "passes" all of them.
    """
    device = torch.device(device_name)
    torch.manual_seed(0)
    extra: dict[str, Any] = {}
    spec = load_spec(spec_name)
    image = np.random.default_rng(0).normal(size=(1, 1, *shape)).astype(np.float32)
    tiles = dict(zip("zyx", tile))
    small = torch.zeros(1, 1, *[2 * s for s in spec.model.size_step()])
    if mode == "whole-onnxruntime":
        session = _onnx_session(build_model(spec).eval(), small, device_name)
        run = lambda: session.run(None, {"input": image})  # noqa: E731
        warm = lambda: session.run(None, {"input": small.numpy()})  # noqa: E731
    elif mode.startswith("whole"):
        network = build_model(spec).eval().to(device)
        layout = channels_last_input if mode == "whole-channels-last" else (lambda x: x)
        if mode == "whole-channels-last":
            to_channels_last(network)
        run = lambda: network(layout(torch.from_numpy(image).to(device))).cpu()  # noqa: E731
        warm = lambda: network(layout(small.to(device)))  # noqa: E731
    else:
        context = ContextNetwork.build(spec, device=device_name)
        exact = mode in ("global", "budget-global", "budget-passes")
        if mode.startswith("budget"):  # ``tile`` is [the --memory budget in bytes]: the tile is planned here, as predict does
            tiles, context.keep_bytes = context_plan(context, tile[0], tuple(shape), exact)
            context.memory = tile[0] if mode == "budget-global" else None  # level by level within it (stagewise.py)
        plan = [axis_windows(n, min(n, tiles.get(a, n) // s * s), h, s) for n, a, h, s in
                zip(shape, "zyx"[3 - len(shape):], context.halo, spec.model.size_step())]
        exact = exact and any(len(w) > 1 for w in plan)  # one tile is the whole image: no passes (as run.py)
        marks: list[float] = []
        count = int(np.prod([len(w) for w in plan]))
        progress = lambda done, total: marks.append(time.perf_counter()) if done % count == 0 else None  # noqa: E731
        last: dict[str, np.ndarray] = {}  # the prediction, for the error of global context
        levels = mode != "budget-passes"  # budget-passes: the tile passes of global_context.py, for comparison
        every: list[float] = []  # a mark per progress call: the level-by-level forward's segments
        progress_all = lambda done, total: (every.append(time.perf_counter()), progress(done, total))  # noqa: E731
        run = lambda: last.update(y=context.predict(image, tiles, global_context=exact, progress=progress_all,  # noqa: E731
                                                    by_levels=levels))
        warm = lambda: context.predict(small.numpy(), {}, global_context=False)  # noqa: E731
        extra = {"tile": [tiles.get(a, n) for a, n in zip("zyx"[3 - len(shape):], shape)], "tiles": count,
                 "computed": float(np.prod([sum(t1 - t0 for _, _, t0, t1 in w) for w in plan]) / np.prod(shape))}
    with torch.no_grad():
        warm()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        resident_before = process_memory("VmRSS") if device.type == "cpu" else 0
        seconds = []
        for _ in range(passes):
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
    result = {"seconds": seconds[0], "passes": seconds, "peak_bytes": _peak_bytes(device), "before_bytes": resident_before}
    if mode in ("budget-global", "budget-passes"):  # after the peak was read: the whole forward, for the error
        with torch.no_grad():
            whole = context.network(channels_last_input(torch.from_numpy(image))).numpy()
            result["error"] = float(np.abs(last["y"] - whole).max() / np.ptp(whole))
    if not mode.startswith("whole"):
        result.update(extra, pass_seconds=list(np.diff(marks[-(len(context.attentions) + 2 if exact else 2):])),
                      dropped=context.store.dropped if context.store is not None else 0)
    if mode == "budget-global" and context.levels is not None and context.levels.tiles:
        steps = [t * (1 + len(s.gvtos)) for t, s in zip(context.levels.tiles, context.levels.geometry.segments)]
        bounds = np.cumsum([0, *steps])
        everything = context.levels.scratch_bytes((1, 1, *shape), 0, out_in_memory=False)  # all spilled: the most
        result.update(pass_seconds=[every[b] - every[a] for a, b in zip(bounds, bounds[1:])],
                      scratch_per_voxel=everything / float(np.prod(shape)),
                      segment_tiles=context.levels.tiles, spilled=context.levels.spilled,
                      segment_stages=[context.levels.stages[s.start].output for s in context.levels.geometry.segments])
    return result


def in_subprocess(spec_name: str, mode: str, shape: list[int], tile: list[int], device: str) -> dict[str, float]:
    """``measure`` in a fresh process; a run that cannot be made gives NaNs and the reason."""
    command = [sys.executable, __file__, "--child", json.dumps([spec_name, mode, shape, tile, device])]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
        print(f"{spec_name} {mode} {shape}: {reason}", file=sys.stderr)
        return {"seconds": float("nan"), "peak_bytes": float("nan"), "before_bytes": float("nan")}
    return json.loads(done.stdout.strip().splitlines()[-1])


def budget_report(args: argparse.Namespace, volume: list[int]) -> str:
    """Whole (onnxruntime, as predict --whole; eager channels-last), then plain tiles and global context with
    tiles planned from one budget (a share of the whole's peak), each in a fresh process; ratios to the whole."""
    model, label = "gvtnet-care-denoise", "x".join(map(str, volume))
    whole = {runtime: in_subprocess(model, runtime, volume, [], args.device)
             for runtime in ("whole-onnxruntime", "whole-channels-last")}
    budget = int(args.budget_share * whole["whole-onnxruntime"]["peak_bytes"])
    tiled = {mode: in_subprocess(model, mode, volume, [budget], args.device)
             for mode in ("budget-tiled", "budget-global", "budget-passes")}
    hardware = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    lines = [f"## Whole-image results in a quarter of the memory: --memory budgets ({args.device}: {hardware}; {date.today()})",
             "", f"`python benchmarks/inference_modes.py --sizes '' --context-volume '' --budget-volume {label} "
             f"--budget-share {args.budget_share}`" + (f"; machine load: {args.load}" if args.load else ""), "",
             f"Budget: {args.budget_share} x the whole volume's onnxruntime peak = {budget / GiB:.2f} GiB; each tiled row "
             "plans its tile from it as `predict --memory` does (predict/budget.py) and runs in eager PyTorch "
             "(channels-last). budget-global is `predict --memory`'s global context, level by level "
             "(predict/stagewise.py: each segment of stages over the whole image in its own tiles; its tile column "
             "gives the tiles per segment, named by its first stage); budget-passes is the same budget with the tile "
             "passes streamed and Dask prediction run (predict/global_context.py); budget-tiled is plain tiles.", "",
             "| mode | tile (tiles; computed / image voxels) | seconds | x whole (onnxruntime) | peak (GiB, VmHWM) | "
             "x whole's peak | seconds per pass or segment |", "|---|---|---:|---:|---:|---:|---|"]
    reference = whole["whole-onnxruntime"]
    for mode, result in {**whole, **tiled}.items():
        tile = f"{'x'.join(map(str, result['tile']))} ({result['tiles']}; {result['computed']:.2f}x)" if "tile" in result else "whole"
        if "segment_tiles" in result:
            tile = "level by level: " + ", ".join(f"{s} {n}" for s, n in zip(result["segment_stages"], result["segment_tiles"]))
        passes = ", ".join(f"{p:.1f}" for p in result.get("pass_seconds", [])) or "-"
        lines.append(f"| {mode} | {tile} | {result['seconds']:.1f} | {result['seconds'] / reference['seconds']:.2f} | "
                     f"{result['peak_bytes'] / GiB:.2f} | {result['peak_bytes'] / reference['peak_bytes']:.2f} | {passes} |")
        print(lines[-1], flush=True)
    glob, passes = tiled["budget-global"], tiled["budget-passes"]
    lines += ["", f"- global context, level by level: {glob['seconds'] / reference['seconds']:.2f}x the whole's time "
              f"(target <= 1.5), {glob['peak_bytes'] / reference['peak_bytes']:.2f}x its peak (target <= 0.25), max "
              f"error {glob.get('error', float('nan')):.1e} of the range (target <= 1e-5); feature maps in scratch "
              f"files: {', '.join(glob.get('spilled', [])) or 'none'} (with every one spilled, as streamed volumes "
              f"far beyond memory do: {glob.get('scratch_per_voxel', float('nan')):.0f} bytes of scratch files per voxel)",
              f"- global context by tile passes under the same budget: {passes['seconds'] / reference['seconds']:.2f}x "
              f"the whole's time, {passes['peak_bytes'] / reference['peak_bytes']:.2f}x its peak, max error "
              f"{passes.get('error', float('nan')):.1e}; pass states that did not fit the budget (recomputed from the "
              f"input): {passes.get('dropped', 0)}",
              f"- plain tiles under the same budget: {tiled['budget-tiled']['seconds'] / reference['seconds']:.2f}x the "
              "whole's time (target <= 1.2)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="32x128x128,64x256x256", help="volumes for the whole-volume comparison")
    parser.add_argument("--models", default="gvtnet-label-free,unet-fnet-label-free,gvtnet-care-denoise")
    parser.add_argument("--runtimes", default="whole,whole-channels-last,whole-onnxruntime",
                        help="whole (eager PyTorch), whole-channels-last, whole-onnxruntime")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh processes per whole-volume row, the models taking turns; the fastest counts")
    parser.add_argument("--context-volume", default="64x288x288",
                        help="volume for tiled vs global context (CARE); empty to skip")
    parser.add_argument("--tile", default="64x96x96", help="tile for tiled vs global context")
    parser.add_argument("--budget-volume", default="",
                        help="volume for whole vs tiles and global context under one --memory budget (CARE); empty to skip")
    parser.add_argument("--budget-share", type=float, default=0.25,
                        help="the budget as a share of the whole volume's peak (onnxruntime, as predict --whole runs it)")
    parser.add_argument("--load", default="", help="what else ran on the machine meanwhile, for the report")
    parser.add_argument("--out", type=Path, help="append the report to this markdown file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*json.loads(args.child))))
        return

    def dims(text: str) -> list[int]:
        return [int(v) for v in text.split("x")]

    if args.budget_volume:
        emit(budget_report(args, dims(args.budget_volume)), args.out)
        if not args.sizes and not args.context_volume:
            return

    hardware = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    lines = [f"## Inference: time and peak memory ({args.device}: {hardware}; {date.today()})", "",
             f"`python benchmarks/inference_modes.py --device {args.device} --sizes {shlex.quote(args.sizes)} --runtimes {args.runtimes} "
             f"--repeats {args.repeats} "
             f"--context-volume {shlex.quote(args.context_volume)} --tile {args.tile}`", "",
             f"| model | volume | mode | seconds | peak memory (GiB, {PEAK[args.device.startswith('cuda')]}) | "
             "resident before the call (GiB) |", "|---|---|---|---:|---:|---:|"]
    whole: dict[tuple[str, str, str], dict[str, float]] = {}
    runtimes = args.runtimes.split(",")
    sizes = [s for s in args.sizes.split(",") if s]
    for size in sizes:
        for runtime in runtimes:
            models = args.models.split(",")
            runs: dict[str, list[dict[str, float]]] = {model: [] for model in models}
            for _ in range(args.repeats):  # the models take turns, so that a slow spell of the machine hits all
                for model in models:
                    runs[model].append(in_subprocess(model, runtime, dims(size), [], args.device))
            for model in models:
                result = whole[(model, size, runtime)] = min(runs[model], key=lambda r: r["seconds"])
                lines.append(f"| {model} | {size} | {runtime} | {result['seconds']:.2f} | {result['peak_bytes'] / GiB:.2f} | "
                             f"{result['before_bytes'] / GiB:.2f} |")
                print(lines[-1], flush=True)
    context: dict[str, dict[str, float]] = {}
    if args.context_volume:
        volume, tile = dims(args.context_volume), dims(args.tile)
        ratio = np.prod(volume) / np.prod(tile)
        context = {mode: in_subprocess("gvtnet-care-denoise", mode, volume, tile if mode != "whole" else [], args.device)
                   for mode in ("whole", "tiled", "global")}
    for mode, result in context.items():
        label = mode if mode == "whole" else f"{mode}, tiles {args.tile}"
        lines.append(f"| gvtnet-care-denoise | {args.context_volume} ({ratio:.1f}x the tile) | {label} | "
                     f"{result['seconds']:.2f} | {result['peak_bytes'] / GiB:.2f} | {result['before_bytes'] / GiB:.2f} |")
        print(lines[-1], flush=True)
    lines += ["", "Ratios (same run):", ""]
    for size in sizes:
        for runtime in runtimes:
            pair = [whole.get((m, size, runtime)) for m in ("gvtnet-label-free", "unet-fnet-label-free")]
            if all(pair):
                lines.append(f"- {size}, {runtime}: label-free GVTNet / fnet U-Net time = "
                             f"{pair[0]['seconds'] / pair[1]['seconds']:.2f} (target <= 0.9)")
    if context:
        memory = context["global"]["peak_bytes"] / max(context["tiled"]["peak_bytes"], 1)
        lines.append(f"- global context / plain tiles on {args.context_volume}: peak memory {memory:.2f}x (target <= 1.5), "
                     f"time {context['global']['seconds'] / context['tiled']['seconds']:.2f}x; whole needs "
                     f"{context['whole']['peak_bytes'] / max(context['global']['peak_bytes'], 1):.1f}x the memory of "
                     "global context")
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
