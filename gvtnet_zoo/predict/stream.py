"""Streamed prediction of volumes larger than memory: lazy inputs (image_io/volumes.py), one tile plan
(predict/plan.py), one tile step (predict/tile_step.py), OME-Zarr outputs written tile by tile
(image_io/ome_zarr_out.py), in one process (predict/local_executor.py) or as Dask tasks (predict/on_dask.py).
Here: checking each volume against the model, planning its job, and running the jobs.

Memory holds the model, a tile and its output, whatever the volume's size: the preprocessing statistics
come from passes over the volume block by block (predict/stats.py), and outputs go to disk per tile.
"""

from __future__ import annotations

import time as clock
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from ..atomic import refuse_to_touch_inputs
from ..errors import Cancelled, UserError
from ..hashing import files_fingerprint, package_sha256
from ..image_io.files import to_model_axes
from ..image_io.ome_zarr_out import OutputImage, check_replace, output_name, release_locks, take_locks
from ..image_io.volumes import VolumeSource, open_volume
from ..progress import Progress, no_progress
from .denormalize import denormalization
from .halo_check import tile_check
from .halos import tile_and_halo
from .local_executor import run_local
from .model import ZooModel, load_zoo_model
from .plan import TilePlan, plan_tiles
from .run import PredictionSummary
from .stats import volume_statistics
from .tensors import axis_ids, axis_letters, check_channels
from .tile_mode import many_tiles_hint, plain_tiles_warning, say_once, tile_rule
from .tile_step import StreamJob, TileStep, release_models


def _letters(tensor: Any) -> str:
    return "".join(axis_letters(tensor))


def _check_fits(source: VolumeSource, tensor: Any, letters: str) -> None:
    """The volume's axes against the model's, with the checks and messages of in-memory files (no voxel read)."""
    axes = source.axes.replace("t", "")  # t becomes the batch, one time point at a time
    shape = tuple(s for a, s in zip(source.axes, source.shape) if a != "t")
    view = to_model_axes(np.broadcast_to(np.float32(0), shape), axes, letters, source.name)
    check_channels(tensor, view.shape, letters, source.name)


def _outputs(descr: Any, plan: TilePlan, source: VolumeSource, out_dir: Path) -> tuple[dict[str, OutputImage], dict]:
    """Where each output goes and its layout: the input's t (if any), then the output's axes without batch."""
    images, dims = {}, {}
    several = len(descr.outputs) > 1
    for output in descr.outputs:
        output_id = str(output.id)
        dims[output_id] = tuple(str(a.id) for a in output.axes)
        letters = _letters(output)
        axes_plan = plan.outputs[output_id]
        unsized = [a.axis for a in axes_plan if a.size < 0]
        if unsized:
            raise UserError(f"the model's output axis {unsized[0]} is not sized by its input; "
                            "predict this model without --out-format ome-zarr / --dask")
        keep = [i for i, letter in enumerate(letters) if letter != "b"]
        axes = ("t" if "t" in source.axes else "") + "".join(letters[i] for i in keep)
        shape = ([source.shape[source.axes.index("t")]] if "t" in source.axes else []) + [axes_plan[i].size for i in keep]
        chunks = ([1] if "t" in source.axes else []) + [plan.chunks(output_id)[i] for i in keep]
        scales = {a.axis: source.scales.get(a.source, 1.0) / a.ratio for a in axes_plan if a.source}
        scales.update({"t": source.scales["t"]} if "t" in source.scales else {})
        # the input's position carried; where the output's voxels are larger or smaller, their centres shift by half
        # the difference (output voxel j covers input voxels j / ratio .. (j + 1) / ratio)
        translations = {a.axis: source.translations.get(a.source, 0.0) + (scales[a.axis] - source.scales.get(a.source, 1.0)) / 2
                        for a in axes_plan if a.source}
        translations.update({"t": source.translations["t"]} if "t" in source.translations else {})
        folder = out_dir / output_id if several else out_dir
        images[output_id] = OutputImage(str(folder / output_name(Path(source.path))), axes, tuple(shape), tuple(chunks),
                                        scales, {a: u for a, u in source.units.items() if a in axes},
                                        source.ngff_version or "0.5", translations)
    return images, dims


def plan_job(model_source: str, weight_format: Optional[str], device: str, allow_download: bool,
             global_context: Optional[bool], source: VolumeSource, out_dir: Path, tile: Optional[dict[str, int]],
             halo: dict[str, int], on_dask: bool = False, echo: Callable[[str], None] = lambda _: None,
             model_sha256: str = "", denormalize: bool = False,
             memory_budget: Optional[int] = None) -> tuple[StreamJob, ZooModel]:
    """Check the volume against the model and plan its tiles (nothing is read or written); also the model.
    ``global_context`` None: a gvtnet-zoo GVTNet's tiles run with it (exact), other networks' plain."""
    from bioimageio.spec.model import v0_5

    # Dask CPU workers run one thread each: TorchScript, as onnxruntime sessions would each take every core
    model = load_zoo_model(model_source, weight_format, device, echo, allow_download=allow_download,
                           one_thread=on_dask)
    descr = model.descr
    if not isinstance(descr, v0_5.ModelDescr) or len(descr.inputs) != 1:
        raise UserError("streamed prediction (OME-Zarr, --dask) takes format 0.5 models with one input; "
                        "predict this model on TIFF files")
    if denormalize:
        denormalization(descr)  # refused before anything is read or written
    tensor = descr.inputs[0]
    letters = _letters(tensor)
    _check_fits(source, tensor, letters)
    sizes = {str(a.id): source.shape[source.axes.index(str(a.id))] for a in tensor.axes if a.type == "space"}
    network, gvtos, automatic = None, 0, global_context is None
    global_context = tile_rule(descr).exact if global_context is None else global_context
    if global_context:
        from .global_context import context_network_from_package

        network = context_network_from_package(descr, "cpu")
        gvtos = len(network.attentions)
    if tile is None and memory_budget is not None:  # --memory: per process, each Dask worker alike
        from .budget import package_tile

        tile = package_tile(descr, sizes, memory_budget, halo, network)
    tile, halos = tile_and_halo(descr, tile, halo, network)
    plan = plan_tiles(descr, sizes, tile, halos)
    if automatic and len(plan.tiles()) == 1:  # one tile is the whole image: no collecting passes needed
        global_context, gvtos = False, 0
    outputs, output_dims = _outputs(descr, plan, source, out_dir)
    return StreamJob(str(model_source), model.weight_format, device, allow_download, global_context, source, str(tensor.id),
                     tuple(map(str, axis_ids(tensor))), letters, plan, outputs, output_dims, gvtos, model_sha256,
                     denormalize=denormalize, keep_bytes=network.keep_bytes if network is not None else None,
                     memory=memory_budget if network is not None else None), model


def _job_json(job: StreamJob, time_points: int) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one: the model's bytes (a package re-made at the same
    path is another model), the input's path, dataset, metadata and files (rewritten voxels would mix old and
    new tiles), and the plan."""
    source = job.source
    stored = Path(source.path) / source.dataset if source.kind == "zarr" and source.dataset else Path(source.path)
    return {"model": job.model_source, "model_sha256": job.model_sha256, "weights": job.weight_format, "source": source.path,
            "dataset": source.dataset, "input_files": files_fingerprint(stored), "shape": source.shape, "axes": source.axes, "scales": source.scales,
            "units": source.units, "global_context": job.global_context, "time_points": time_points,
            "plan": job.plan.to_json(), **({"denormalize": True} if job.denormalize else {})}  # never mix units


def predict_volumes(model_source: str | Path, inputs: Sequence[Path], out_dir: Path, *, weight_format: Optional[str],
                    device: str, global_context: Optional[bool], tile: Optional[dict[str, int]], halo: dict[str, int],
                    axes: Optional[str], level: Optional[int], overwrite: bool, resume: bool, allow_download: bool,
                    dask: Optional[str], dask_workers: Optional[int] = None, denormalize: bool = False,
                    echo: Callable[[str], None] = print, progress: Progress = no_progress,
                    memory_budget: Optional[int] = None) -> PredictionSummary:
    """Predict each input volume to OME-Zarr in ``out_dir``, tile by tile; see the module's docstring.
    ``global_context``: True, the whole image's result in tiles (gvtnet-zoo GVTNets); False, plain tiles (a GVTNet's
    with a warning); None, global context where it applies (a gvtnet-zoo GVTNet's tiles are exact)."""
    sources = [open_volume(Path(p), level, axes) for p in inputs]
    model_sha256 = package_sha256(model_source) if Path(model_source).exists() else ""
    jobs = [plan_job(str(model_source), weight_format, device, allow_download, global_context, s, Path(out_dir), tile, halo,
                     on_dask=dask is not None, echo=echo if index == 0 else lambda _: None, model_sha256=model_sha256,
                     denormalize=denormalize, memory_budget=memory_budget)
            for index, s in enumerate(sources)]
    names = [image.path for job, _ in jobs for image in job.outputs.values()]
    if len(set(names)) != len(names):
        raise UserError("several inputs would be written to the same output name; give them different names")
    refuse_to_touch_inputs([*names, *(f"{n}.progress" for n in names)], [s.path for s in sources])
    voxels, tiles_run, plans = 0, 0, []
    for job, model in jobs:
        times = job.source.shape[job.source.axes.index("t")] if "t" in job.source.axes else 1
        state = _job_json(job, times)
        resuming = [check_replace([image], state, overwrite, resume) for image in job.outputs.values()]
        plans.append((job, model, times, state, all(resuming)))
    executor: Any = None
    if dask is not None:
        from .on_dask import DaskExecutor

        executor = DaskExecutor(dask, device, dask_workers, echo)
    start = clock.perf_counter()  # after the cluster's start-up (DaskExecutor reports it), as a user's rate
    locks: list[Path] = []
    note = say_once(echo)  # the many-tiles hint: once per run
    fresh: list[OutputImage] = []  # created by this run and not finished: removed if bad input stops the run
    try:
        locks = take_locks([image for job, _ in jobs for image in job.outputs.values()])
        for job, model, times, state, resuming in plans:
            descr = model.descr
            if not resuming:
                for image in job.outputs.values():
                    image.create(state)
                fresh = list(job.outputs.values())
            done = set.intersection(*(image.done() for image in job.outputs.values()))
            tiles = job.plan.tiles()
            todo = {t: [tile for tile in tiles if f"{t}-{tile.index}" not in done] for t in range(times)}
            todo = {t: remaining for t, remaining in todo.items() if remaining}
            total = sum(len(r) for r in todo.values())
            tiles_run += total
            if resuming:
                echo(f"{job.source.name}: resuming, {times * len(tiles) - total} of {times * len(tiles)} tiles already written")
            space = int(np.prod([a.size for a in job.plan.axes]))
            hint = many_tiles_hint(job.source.name, len(tiles), space, model.devices, job.gvtos)
            if hint:
                note(hint)
            with tqdm(total=total, desc=f"  {job.source.name}", unit="tile", leave=False) as bar:
                check = tile_check(job.plan, job.source.name, echo,
                                   None if job.global_context else plain_tiles_warning(job.source.name, tile_rule(descr)))
                if executor is not None:
                    array = job.source.open()
                    executor.run(job, todo, bar, lambda time, job=job, descr=descr, array=array: volume_statistics(job, descr, array, time, echo),
                                 check)
                else:
                    run_local(job, TileStep(job), todo, bar, check, progress, echo)
            for image in job.outputs.values():
                image.finish(Path(image.path).name)
            fresh = []
            voxels += times * space
    except KeyboardInterrupt:
        raise UserError("interrupted; what was written is kept: rerun the same command with --resume to complete it") from None
    except Cancelled:  # the GUI's Cancel, as Ctrl-C: what was written is kept for a resume
        raise
    except BaseException:  # bad input (NaN, say) or any failure: nothing half-written that this run created stays
        for image in fresh:
            image.remove()
        raise
    finally:
        release_locks(locks)
        release_models()  # the local executor's model, kept from one image to the next
        workers = executor.describe() if executor is not None else "1 process"
        if executor is not None:
            executor.close()
    weights = "pytorch_state_dict (global context)" if any(job.global_context for job, _ in jobs) else jobs[0][0].weight_format
    written = tuple((output_id, image.path) for job, _ in jobs for output_id, image in job.outputs.items())
    summary = PredictionSummary(len(jobs), voxels, clock.perf_counter() - start, workers, weights, tiles_run, written)
    echo(summary.line())
    return summary
