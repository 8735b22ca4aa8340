"""Volumes larger than memory: streamed prediction to OME-Zarr under a memory cap, in one process and on Dask.

    python benchmarks/big_volume.py --out benchmarks/results/big_volume.md      # then performance_doc.py

A synthetic uint16 volume (and, with the float32 run, a float32 one with a zero background) is written chunk
by chunk as OME-Zarr (never whole in memory), and the demo CARE GVTNet (demo-gvtnet-care-denoise-3d, random-ish weights from a 3-step run: speed and memory do not
depend on them) predicts it with `gvtnet-zoo predict`, each configuration a fresh command run inside a
Linux memory cgroup (v1: memory.limit_in_bytes = --cap-mib; root needed) so the cap is a hard limit: a
run over it is killed. Rates are the CLI's own (its summary line): from after the Dask cluster is up to
the last tile written, the statistics passes (their count is the CLI's own line), each worker's model
loading and the pyramid included. Peak memory = the largest sum of VmRSS over all processes in the cgroup (the CLI
and its Dask workers), sampled every 0.1 s; the cgroup's own peak (memory.max_usage_in_bytes) counts the
page cache of the files read and written too and is given beside it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import emit  # noqa: E402

MiB = 1024**2
CLI = [sys.executable, "-m", "gvtnet_zoo.cli"]


def _cgroup_root() -> Path:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    raise SystemExit("no cgroup v1 memory controller here; this benchmark needs one to cap memory")


def write_volume(path: Path, shape: tuple[int, int, int], seed: int = 0, dtype: str = "uint16") -> None:
    """An OME-Zarr (NGFF 0.5) volume of blobs and noise, written one z-slab of chunks at a time: uint16, or float32
    with a zero background over the first half of y (light-sheet data outside the sample: ties at one value)."""
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    array = group.create_array("0", shape=shape, chunks=(16, 256, 256), dtype=dtype)
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[: shape[1], : shape[2]]
    for z0 in range(0, shape[0], 16):
        slab = np.empty((min(16, shape[0] - z0), *shape[1:]), dtype)
        for i in range(slab.shape[0]):
            blobs = 1500 * (np.sin(y / 9.0 + (z0 + i) / 5.0) * np.cos(x / 11.0)) ** 2
            slab[i] = (200 + blobs + rng.poisson(60, shape[1:])).astype(dtype)
        if dtype == "float32":
            slab[:, : shape[1] // 2] = 0.0
        array[z0: z0 + slab.shape[0]] = slab
    write_multiscales_metadata(group, [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [1.0, 0.5, 0.5]}]}], fmt=FormatV05(), axes=["z", "y", "x"])


def make_package(root: Path) -> Path:
    """The demo CARE GVTNet after 3 training steps, packaged (the zoo's tests run while packaging)."""
    from gvtnet_zoo.data.synthetic import write_synthetic

    data = write_synthetic("denoise", root / "data", 2, 1, (16, 64, 64), seed=0)
    settings = ["train.steps=3", "train.val_every=3", "train.checkpoint_every=3", "data.val_patches=2"]
    subprocess.run([*CLI, "train", "demo-gvtnet-care-denoise-3d", "--data", str(data / "train"), "--val",
                    str(data / "test"), "--out", str(root / "run"), *[f"--set={s}" for s in settings]], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([*CLI, "package", str(root / "run"), "--out", str(root / "care.zip")], check=True,
                   stdout=subprocess.DEVNULL)
    return root / "care.zip"


def _rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue  # the process ended between listing and reading
    return total


def run_capped(command: list[str], cap: int, name: str) -> dict[str, float]:
    """Run ``command`` in a fresh memory cgroup of ``cap`` bytes; its time, peak RSS (all its processes) and
    the cgroup's peak (page cache included). Exits if it fails or is killed."""
    group = _cgroup_root() / f"gvtnet-bench-{os.getpid()}-{name}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(cap))
        start = time.perf_counter()
        process = subprocess.Popen(command, preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak, done = [0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
                peak[0] = max(peak[0], _rss(pids))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = process.communicate()
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        if process.returncode != 0:
            raise SystemExit(f"{name}: exit {process.returncode} (137: killed at the cap)\n{out}")
        cgroup_peak = int((group / "memory.max_usage_in_bytes").read_text())
        lines = out.strip().splitlines()
        passes = next((line.split("statistics in ")[1].split(" pass")[0] for line in lines if "statistics in " in line), "-")
        return {"seconds": seconds, "peak_rss": peak[0], "cgroup_peak": cgroup_peak, "summary": lines[-1], "passes": passes}
    finally:
        for pid in (group / "cgroup.procs").read_text().split() if group.exists() else []:
            (group.parent / "cgroup.procs").write_text(pid)
        group.rmdir()


def _tiles_and_seconds(summary: str) -> tuple[int, float]:
    """From 'predicted 1 image(s), 16 tiles, 8,388,608 voxels in 14.9 s (...)'."""
    tiles = int(summary.split(" tiles")[0].split()[-1])
    seconds = float(summary.split(" voxels in ")[1].split(" s")[0])
    return tiles, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="32x512x512,32x1024x512,32x2048x1024",
                        help="ZxYxX volumes (uint16), the last 8x the first; z within one tile keeps the tiles alike")
    parser.add_argument("--runs", default="tiles,global,float32,executors,dask-global",
                        help="what to run: tiles and global on every volume, float32 (tiles on a float32 copy with "
                             "a zero background) on every size, executors (1 thread, Dask 1 and 2 workers) and "
                             "dask-global (global context on Dask 1 and 2 workers) on the largest")
    parser.add_argument("--tile", default="32,192,192")
    parser.add_argument("--cap-mib", type=int, default=1536, help="the cgroup's memory limit")
    parser.add_argument("--work", type=Path, help="folder for volumes and outputs (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="write the table here (Markdown)")
    args = parser.parse_args()
    cap = args.cap_mib * MiB
    work = args.work or Path(tempfile.mkdtemp(prefix="big-volume-"))
    package = make_package(work)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rows = ["| volume | stored size | configuration | statistics passes | tiles/s | voxels/s | peak RSS (all processes) | "
            "cgroup peak (with page cache) |", "|---|---|---|---|---|---|---|---|"]
    timings: dict[tuple, dict[str, float]] = {}
    runs = args.runs.split(",")
    for shape in sizes:
        volumes = {"uint16": work / f"v{'x'.join(map(str, shape))}.ome.zarr"}
        write_volume(volumes["uint16"], shape)
        if "float32" in runs:
            volumes["float32"] = work / f"f{'x'.join(map(str, shape))}.ome.zarr"
            write_volume(volumes["float32"], shape, dtype="float32")
        voxels = int(np.prod(shape))
        # a gvtnet-zoo GVTNet's tiles run with global context by default: the plain-tile rows ask for plain tiles
        configurations = {name: flags for name, flags, run in [
            ("tiles, 1 process", ["--plain-tiles"], "tiles"), ("global context, 1 process", ["--global-context"], "global"),
            ("float32, zero background: tiles, 1 process", ["--float32", "--plain-tiles"], "float32")] if run in runs}
        if shape == sizes[-1] and "executors" in runs:  # executors compared on the most tiles, all on TorchScript
            # (threads: PyTorch keeps to OMP_NUM_THREADS and the Dask workers' one thread; onnxruntime would not)
            torchscript = ["--weight-format", "torchscript", "--plain-tiles"]
            configurations.update({"TorchScript, 1 process, 1 thread": ["--threads1", *torchscript],
                                   "TorchScript, 1 process, 2 threads": torchscript,
                                   "TorchScript, Dask 1 worker": ["--dask-workers", "1", *torchscript],
                                   "TorchScript, Dask 2 workers": ["--dask-workers", "2", *torchscript]})
        if shape == sizes[-1] and "dask-global" in runs:  # global context's tile passes as Dask tasks
            configurations.update({"global context, Dask 1 worker": ["--global-context", "--dask-workers", "1"],
                                   "global context, Dask 2 workers": ["--global-context", "--dask-workers", "2"]})
        for name, flags in configurations.items():
            env_one = "--threads1" in flags
            volume = volumes["float32" if "--float32" in flags else "uint16"]
            command = [*CLI, "predict", str(package), str(volume), "--out", str(work / "out"), "--tile", args.tile,
                       "--device", "cpu", "--overwrite", *[f for f in flags if f not in ("--threads1", "--float32")]]
            if env_one:
                command = ["env", "OMP_NUM_THREADS=1", *command]
            result = run_capped(command, cap, f"{shape[0]}-{len(timings)}")
            timings[(shape, name)] = result
            tiles, seconds = _tiles_and_seconds(result["summary"])
            result["seconds"] = seconds
            stored = voxels * (4 if "--float32" in flags else 2) / MiB
            rows.append(f"| {'x'.join(map(str, shape))} | {stored:,.0f} MiB | {name} | {result['passes']} | "
                        f"{tiles / seconds:.2f} | {voxels / seconds:,.0f} | "
                        f"{result['peak_rss'] / MiB:,.0f} MiB | {result['cgroup_peak'] / MiB:,.0f} MiB |")
            print(rows[-1], flush=True)
    first, last = sizes[0], sizes[-1]
    notes = [
        f"Cap: a cgroup v1 memory limit of {args.cap_mib} MiB on every command (the CLI and its Dask workers); "
        f"largest volume {int(np.prod(last)) * 2 / MiB:,.0f} MiB uint16 ({int(np.prod(last)) * 2 / cap:.1f}x the cap) "
        f"plus {int(np.prod(last)) * 4 / MiB:,.0f} MiB of float32 output. Every run completed under it.",
        "Peak RSS sums the processes' resident memory, so libraries shared by Dask workers count once per worker.",
    ]
    for name in ("tiles, 1 process", "global context, 1 process", "float32, zero background: tiles, 1 process"):
        if len(sizes) > 1 and all((s, name) in timings for s in sizes):
            peaks = [timings[(s, name)]["peak_rss"] for s in sizes]
            notes.append(f"Peak RSS of {name} from the smallest to the largest volume "
                         f"({int(np.prod(last)) // int(np.prod(first))}x): " + " -> ".join(f"{p / MiB:,.0f}" for p in peaks) + " MiB.")
    if (last, "TorchScript, Dask 1 worker") in timings:
        seconds = {name.split(", ", 1)[1]: timings[(last, name)]["seconds"] for shape, name in timings
                   if shape == last and name.startswith("TorchScript")}
        one, two = seconds["Dask 1 worker"], seconds["Dask 2 workers"]
        tile_count = _tiles_and_seconds(timings[(last, "TorchScript, Dask 1 worker")]["summary"])[0]
        notes += [f"Dask overhead (TorchScript): 1 worker against 1 process with 1 thread on {tile_count} tiles: "
                  f"{(one - seconds['1 process, 1 thread']) / tile_count * 1000:+.0f} ms per tile ({one:.1f} s against "
                  f"{seconds['1 process, 1 thread']:.1f} s; the worker's start-up and model loading included, the "
                  "cluster's own start-up not).",
                  f"2 Dask workers (one thread each) against 1 worker: {one / two:.2f}x the voxels/s; against 1 process "
                  f"with 2 threads: {seconds['1 process, 2 threads'] / two:.2f}x."]
    if (last, "global context, Dask 1 worker") in timings:
        one, two = (timings[(last, f"global context, Dask {n}")]["seconds"] for n in ("1 worker", "2 workers"))
        alone = timings.get((last, "global context, 1 process"), {}).get("seconds")
        notes.append(f"Global context on Dask (one pass over the tiles per GVTO, then the predicting pass, as tasks): "
                     f"2 workers against 1: {one / two:.2f}x the voxels/s (target >= 1.7)"
                     + (f"; the level-by-level forward in 1 process (2 threads) against 2 workers: {two / alone:.2f}x"
                        if alone else "") + ".")
    command = "python benchmarks/big_volume.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    emit("\n".join([f"# Streamed prediction of large volumes ({date.today()})", "",
                    f"`{command}` on {platform.node() or 'this machine'} ({os.cpu_count()} cores, {platform.processor() or platform.machine()}).",
                    "", *rows, "", *[f"- {n}" for n in notes], ""]), args.out)


if __name__ == "__main__":
    main()
