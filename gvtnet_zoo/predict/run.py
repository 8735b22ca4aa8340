"""``gvtnet-zoo predict``: any zoo package on files, the prediction pipeline created once for all of them.

Modes: whole (the image at once, padded on the far side to a valid size and cropped back), tiled
(the tile plan's cores, predict/tiled.py; a gvtnet-zoo GVTNet's tiles run with global context, exact), plain
(tiles each on their own, even a GVTNet's, with a warning), global (gvtnet-zoo GVTNets only: the whole image's
result in tiles, predict/global_context.py), or auto (whole when the image is small enough, else tiled).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

import numpy as np
from tqdm import tqdm

from ..atomic import refuse_to_replace, refuse_to_touch_inputs
from ..data.resample import resize_yx
from ..errors import UserError
from ..image_io.files import guess_axes, output_path, read_calibration, write_output
from ..progress import Progress, no_progress
from . import memory
from .arguments import match_samples, parse_tile
from .denormalize import Denormalization, denormalization, denormalize_sample
from .halos import tile_and_halo
from .inputs import read_sample, sample_members
from .model import ZooModel, create_pipeline, load_zoo_model
from .network_call import run_network
from .overlap import BackgroundWriter, prefetched
from .patches import PatchRule, patch_rule, predict_patches
from .pixel_size import resample_factor, zscore_before_resizing
from .plan import TilePlan
from .sizes import crop_outputs, exceeds_fixed_size, pad_to_valid
from .tensors import axis_ids, axis_letters, channel_count
from .tile_mode import TileRule, many_tiles_hint, plain_tiles_warning, say_once, tile_rule
from .tiled import plan_for_sample, predict_tiled, same_grid

if TYPE_CHECKING:  # torch: imported only when global context runs
    from .global_context import ContextNetwork



@dataclass
class PredictionSummary:
    """The last line of a prediction run (files or streamed images alike)."""

    files: int
    voxels: int
    seconds: float
    device: str  # the device, or the Dask workers
    weight_format: str
    tiles: Optional[int] = None  # streamed runs: the tiles predicted in this run
    outputs: tuple[tuple[str, str], ...] = ()  # streamed runs: (output id, OME-Zarr path) per image and output

    def line(self) -> str:
        rate = self.voxels / self.seconds if self.seconds > 0 else float("nan")
        tiles = f", {self.tiles} tile{'' if self.tiles == 1 else 's'}" if self.tiles is not None else ""
        return (f"predicted {self.files} file(s){tiles}, {self.voxels:,} voxels in {self.seconds:.1f} s "
                f"({rate:,.0f} voxels/s) with {self.weight_format} weights on {self.device}")


def _predict_whole(pipeline: Any, model: ZooModel, sample: Any) -> Any:
    """The image at once: normalized as given, mirrored up to a valid size, predicted, cropped back."""
    from bioimageio.spec.model import v0_5

    if not isinstance(model.descr, v0_5.ModelDescr):  # format 0.4: sizes are the caller's business
        return pipeline.predict_sample_without_blocking(sample)
    larger = exceeds_fixed_size(model.descr, sample)
    if larger:
        raise UserError(f"the image is larger than the model's fixed size along {larger}; predict it without --whole "
                        "(in tiles of the fixed size)")
    pipeline.apply_preprocessing(sample)  # statistics of the image as given, not of its padding
    original = pad_to_valid(model.descr, sample)
    result = run_network(pipeline, sample, model.weight_format)
    pipeline.apply_postprocessing(result)
    return crop_outputs(model.descr, result, original)


def _tile_ns(model: ZooModel, tile: dict[str, int], sample: Any) -> dict[tuple[Any, Any], int]:
    """Block size parameters for tiles of about ``tile``, never larger than the (padded) images."""
    from bioimageio.spec.model import v0_5

    ns = {}
    for tensor in model.descr.inputs:
        sizes = sample.members[tensor.id].sizes
        for axis in tensor.axes:
            if axis.type == "space" and isinstance(axis.size, v0_5.ParameterizedSize):
                wanted = min(tile.get(str(axis.id), sizes[axis.id]), sizes[axis.id])
                ns[(tensor.id, axis.id)] = max(0, (wanted - axis.size.min) // axis.size.step)
    return ns


def _predict_tiled(pipeline: Any, model: ZooModel, sample: Any, tile: Optional[dict[str, int]], name: str,
                   halo_override: dict[str, int], warn: Callable[[str], None], progress: Progress,
                   plain_warning: Optional[str] = None, planned: Callable[[TilePlan], None] = lambda _: None) -> Any:
    """The tile plan's tiles (predict/tiled.py), several inputs alike when they share one grid; otherwise
    bioimageio.core's blocks, each padded by the output halo, halos cropped when stitching. ``tile`` None:
    halos.DEFAULT_TILE, grown where the halo needs it. ``plain_warning``: a GVTNet's, instead of the seam check;
    ``planned`` hears the plan."""
    from bioimageio.spec.model import v0_5

    if not isinstance(model.descr, v0_5.ModelDescr):
        raise UserError("tiled prediction needs a format 0.5 model; predict this one --whole")
    tile, halo = tile_and_halo(model.descr, tile, halo_override)
    if same_grid(model.descr, sample):
        plan = plan_for_sample(model.descr, sample, tile, halo)
        planned(plan)
        return predict_tiled(pipeline, model.descr, sample, plan, name, model.weight_format, warn, progress,
                             plain_warning)
    pipeline.apply_preprocessing(sample)  # statistics of the images as given, not of their padding
    original = pad_to_valid(model.descr, sample)
    total, intermediates = pipeline.predict_sample_with_blocking_yield_intermediates(
        sample, skip_preprocessing=True, ns=_tile_ns(model, tile, sample))
    last = None
    for done, last in enumerate(tqdm(intermediates, total=total, desc=f"  {name}", unit="block", leave=False)):
        progress(done, total)
    progress(total, total)
    return crop_outputs(model.descr, last.sample, original)


@contextmanager
def _processing_only(descr: Any) -> Iterator[Any]:
    """The package's pre- and postprocessing without loading its weights (global context runs its own network)."""
    from bioimageio.core.proc_setup import get_pre_and_postprocessing

    procs = get_pre_and_postprocessing(descr, dataset_for_initial_statistics=())
    yield SimpleNamespace(apply_preprocessing=procs.pre, apply_postprocessing=procs.post)


def _predict_global(pipeline: Any, model: ZooModel, network: "ContextNetwork", sample: Any,
                    tile: Optional[dict[str, int]], halo_override: dict[str, int], name: str, progress: Progress,
                    planned: Callable[[TilePlan], None] = lambda _: None) -> Any:
    """The package's own pre- and postprocessing on the whole sample (statistics of the image as given); the
    network's forward by global context, over the tiles of the plan streamed prediction uses (``planned`` hears
    it; a plan of one tile is the whole image, which needs no collecting passes)."""
    from bioimageio.core import Tensor
    from bioimageio.core.sample import Sample

    tensor, output = model.descr.inputs[0], model.descr.outputs[0]
    tile, halo = tile_and_halo(model.descr, tile, halo_override, network)
    plan = plan_for_sample(model.descr, sample, tile, halo)
    planned(plan)
    pipeline.apply_preprocessing(sample)
    original = pad_to_valid(model.descr, sample)
    image = sample.members[tensor.id].transpose(axis_ids(tensor)).data.to_numpy().astype(np.float32)
    windows = [a.windows() for a in plan.axes]
    predicted = network.predict(image, tile, name, global_context=any(len(w) > 1 for w in windows),
                                progress=progress, windows=windows)
    result = Sample(members={output.id: Tensor.from_numpy(predicted, dims=axis_ids(output))}, stat=sample.stat,
                    id=sample.id)
    pipeline.apply_postprocessing(result)
    return crop_outputs(model.descr, result, original)


@dataclass
class Predictor:
    """A loaded model and how to run it: one pipeline (or context network) for every sample."""

    model: ZooModel
    pipeline: Any
    network: Optional["ContextNetwork"]
    mode: str  # auto, whole, tile, plain, global or patches
    tile: Optional[dict[str, int]]
    halo: dict[str, int]
    whole_limit: int  # auto: the most space voxels predicted at once
    warn: Callable[[str], None]
    denormalize: Optional[Denormalization] = None  # --denormalize: outputs back in the input's units
    patches: Optional[PatchRule] = None  # mode patches: the original's cropped prediction (predict/patches.py)
    rule: TileRule = TileRule(False)  # what tiles do to the network (predict/tile_mode.py)
    context: Optional[Callable[[], "ContextNetwork"]] = None  # auto: builds ``network`` for the first tiled image
    note: Callable[[str], None] = print  # the many-tiles hint, once per run
    runs: dict[str, int] = field(default_factory=lambda: {"global": 0, "other": 0})
    memory_budget: Optional[int] = None  # --memory (bytes): each tiled image's tile from it, unless --tile

    def _budget_tile(self, sample: Any, network: Optional["ContextNetwork"]) -> Optional[dict[str, int]]:
        """--tile's tile, else --memory's for this image (predict/budget.py), else None (the default tile)."""
        if self.tile is not None or self.memory_budget is None:
            return self.tile
        from .budget import package_tile

        shape = sample.members[self.model.descr.inputs[0].id].tagged_shape
        sizes = {str(axis): int(size) for axis, size in shape.items() if str(axis) in ("z", "y", "x")}
        return package_tile(self.model.descr, sizes, self.memory_budget, self.halo, network)

    def _tiled(self, space: int, sample: Any) -> bool:
        return self.mode in ("tile", "plain", "global") or (
            self.mode == "auto" and (space > self.whole_limit or bool(exceeds_fixed_size(self.model.descr, sample))))

    def predict(self, members: dict[str, Any], space: int, name: str,
                progress: Progress = no_progress) -> dict[str, np.ndarray]:
        """{output id: array in the output's axes} of one sample (``sample_members``); ``progress`` hears tiles."""
        from bioimageio.core.digest_spec import create_sample_for_model

        model = self.model
        raw = dict(members)  # the image as given: preprocessing replaces the sample's members
        sample = create_sample_for_model(model.descr, inputs=members, sample_id=Path(name).stem)
        tiled = self.mode != "patches" and self._tiled(space, sample)
        exact = tiled and self.mode != "plain" and (self.network is not None or self.context is not None)

        def planned(plan: TilePlan) -> None:
            hint = many_tiles_hint(name, len(plan.tiles()), space, model.devices, self.rule.gvtos if exact else 0)
            if hint:
                self.note(hint)

        if exact:
            if self.network is None and self.context is not None:
                self.network = self.context()
            assert self.network is not None
            result = _predict_global(self.pipeline, model, self.network, sample,
                                     self._budget_tile(sample, self.network), self.halo, name, progress, planned)
        elif self.mode == "patches" and self.patches is not None:
            result = predict_patches(self.pipeline, model.descr, sample, self.patches, model.weight_format, progress)
        elif tiled:
            result = _predict_tiled(self.pipeline, model, sample, self._budget_tile(sample, None), name, self.halo,
                                    self.warn, progress, plain_tiles_warning(name, self.rule), planned)
        else:
            progress(0, 1)
            result = _predict_whole(self.pipeline, model, sample)
            progress(1, 1)
        self.runs["global" if exact else "other"] += 1
        if self.denormalize is not None:  # once on the final output, with the percentiles the preprocessing used
            denormalize_sample(self.denormalize, result, sample.stat, raw)
        return {o: result.members[o].data.to_numpy() for o in model.output_ids}

    @property
    def device_label(self) -> str:
        return str(next(self.network.network.parameters()).device) if self.network else self.model.device_label

    @property
    def weights_label(self) -> str:
        """The weights that ran; global context names itself (the package's state dict, gvtnet-zoo's network)."""
        context = "pytorch_state_dict (global context)"
        if not self.runs["global"]:
            return context if self.mode == "global" else self.model.weight_format
        if not self.runs["other"]:
            return context
        return f"{self.model.weight_format} (whole) and {context} for {self.runs['global']} tiled image(s)"


def _context_network(descr: Any, device: str, local_rank: int) -> "ContextNetwork":
    from ..devices import choose_device
    from .global_context import context_network_from_package

    return context_network_from_package(descr, str(choose_device(device, local_rank)))


@contextmanager
def open_predictor(model: ZooModel, mode: str, device: str, tile: Optional[str], halo: Optional[str],
                   echo: Callable[[str], None], local_rank: int = 0, denormalize: bool = False,
                   patches: Optional[str] = None, overlap: Optional[str] = None,
                   memory_budget: Optional[int] = None) -> Iterator[Predictor]:
    """The model's prediction pipeline (global: the package's processing and the context network), created once.
    A gvtnet-zoo GVTNet's tiles (mode tile, and auto's) run with global context; mode plain runs plain tiles.
    Mode patches: ``patches`` and ``overlap`` ('Z,Y,X' or 'Y,X') as predict/patches.py rounds and checks them."""
    back = denormalization(model.descr) if denormalize else None  # refused before anything loads
    rule = patch_rule(model.descr, parse_tile(patches, 3, "--patches") or {},
                      parse_tile(overlap, 3, "--overlap", minimum=0) or {}) if mode == "patches" else None
    tiling = tile_rule(model.descr)
    network: Optional["ContextNetwork"] = None
    context: Optional[Callable[[], "ContextNetwork"]] = None
    if mode == "global" or (mode == "tile" and tiling.exact):
        network = _context_network(model.descr, device, local_rank)
    elif mode == "auto" and tiling.exact:  # built only if an image is tiled
        context = partial(_context_network, model.descr, device, local_rank)
    tile_sizes = parse_tile(tile, 3)
    halo_sizes = parse_tile(halo, 3, "--halo", minimum=0) or {}
    whole_limit = memory.free_memory_bytes(model.devices) // 2 // memory.BYTES_PER_VOXEL if mode == "auto" else 0
    with (_processing_only(model.descr) if network is not None else create_pipeline(model)) as pipeline:
        yield Predictor(model, pipeline, network, mode, tile_sizes, halo_sizes, whole_limit, say_once(echo), back, rule,
                        tiling, context, say_once(echo), memory_budget=memory_budget)


def predict_files(model_source: str | Path, inputs: Sequence[str | Path], out_dir: str | Path, *,
                  named_inputs: Optional[dict[str, list[str]]] = None, weight_format: Optional[str] = None,
                  device: str = "auto", mode: str = "auto", tile: Optional[str] = None, axes: Optional[str] = None,
                  overwrite: bool = False, allow_download: bool = False, halo: Optional[str] = None,
                  pixel_size: Optional[float] = None, keep_model_pixel_size: bool = False, denormalize: bool = False,
                  patches: Optional[str] = None, overlap: Optional[str] = None,
                  echo: Callable[[str], None] = print, memory_budget: Optional[int] = None) -> PredictionSummary:
    """Predict every input file (or set of files, one per model input) with one prediction pipeline.
    ``memory_budget`` (bytes, ``--memory``): tiles the largest whose modelled peak fits (predict/budget.py).

    Outputs go to ``out_dir`` under the (first) input's file name; several outputs get a folder each.
    ``mode``: auto, whole, tile (a gvtnet-zoo GVTNet's tiles with global context: exact), plain (tiles each on
    their own, even a GVTNet's, with a warning), global or patches.
    ``pixel_size`` (um): inputs are resized to the model's declared pixel size, outputs back (pixel_size.py;
    not with ``keep_model_pixel_size``); a per-sample z-score of the package runs before the resizing.
    The next file is read, and the last outputs written, while a file is predicted (predict/overlap.py).
    """
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    model = load_zoo_model(model_source, weight_format, device, echo, local_rank=local_rank,
                           allow_download=allow_download)
    samples = match_samples(model, inputs, named_inputs or {})[rank::world]  # under torchrun: every world-th
    out_dir = Path(out_dir)
    several = len(model.output_ids) > 1
    first_input = model.input_ids[0]
    planned = [[output_path(out_dir, s[first_input], o, several) for o in model.output_ids] for s in samples]
    refuse_to_touch_inputs([p for paths in planned for p in paths], [p for s in samples for p in s.values()])
    refuse_to_replace([p for paths in planned for p in paths], overwrite)
    resample = resample_factor(model.descr, pixel_size, keep_model_pixel_size)
    model, zscored = zscore_before_resizing(model) if resample != 1.0 else (model, {})
    start, voxels = time.perf_counter(), 0

    def read(job: tuple[dict[str, Path], list[Path]]) -> tuple[dict[str, Any], int, list[str], tuple[int, int]]:
        return read_sample(model, job[0], axes, resample, zscored)

    source_of = {paths[0]: s[first_input] for s, paths in zip(samples, planned)}  # outputs follow the first input

    def write(targets: list[Path], arrays: list[np.ndarray]) -> None:
        calibration = read_calibration(source_of[targets[0]], pixel_size)  # its voxel sizes, resampled to each output's
        for output, target, array in zip(model.descr.outputs, targets, arrays):
            write_output(target, array, axis_letters(output), calibration)

    with open_predictor(model, mode, device, tile, halo, echo, local_rank, denormalize, patches, overlap,
                        memory_budget) as predictor, \
            BackgroundWriter() as writer:
        jobs = list(zip(samples, planned))
        for (files, targets), (members, space, notes, yx) in tqdm(prefetched(jobs, read), total=len(jobs),
                                                                  desc="predict", unit="file",
                                                                  disable=len(samples) < 2 or rank > 0):
            for note in notes:
                echo(note)
            voxels += space
            outputs = predictor.predict(members, space, files[first_input].name)
            arrays = [outputs[o] if resample == 1.0 or keep_model_pixel_size
                      else resize_yx(outputs[o], axis_letters(d), sizes=yx)
                      for o, d in zip(model.output_ids, model.descr.outputs)]
            writer.submit(write, targets, arrays)
    label = predictor.device_label + (f" (process {rank} of {world})" if world > 1 else "")
    summary = PredictionSummary(len(samples), voxels, time.perf_counter() - start, label, predictor.weights_label)
    echo(summary.line())
    return summary


def predict_image(model_source: str | Path, images: dict[str, np.ndarray], *, axes: Optional[str] = None,
                  stacks: bool = False, weight_format: Optional[str] = None, device: str = "auto", mode: str = "auto",
                  tile: Optional[str] = None, halo: Optional[str] = None, allow_download: bool = False,
                  echo: Callable[[str], None] = print, progress: Progress = no_progress,
                  denormalize: bool = False) -> dict[str, tuple[np.ndarray, str]]:
    """Predict one in-memory sample ({name: array}, one per model input, in the model's input order) ->
    {output id: (array, its axes as letters of bczyx)}; what ``predict_files`` does for a file (``mode`` alike).

    ``stacks``: an image with one axis more than the model's space axes (and no channel axis of several) is a
    stack of images along its first axis (a time-lapse in napari), each predicted as its own sample (its own
    normalization) and stacked along the output's batch axis.
    """
    model = load_zoo_model(model_source, weight_format, device, echo, allow_download=allow_download)
    if len(images) != len(model.input_ids):
        raise UserError(f"the model takes {len(model.input_ids)} input(s) ({', '.join(model.input_ids)}); "
                        f"give {len(model.input_ids)} image(s), got {len(images)}")
    planes: list[dict[str, tuple[np.ndarray, str, str]]] = [{}]
    for input_id, tensor, (name, image) in zip(model.input_ids, model.descr.inputs, images.items()):
        letters = axis_letters(tensor)
        space = "".join(a for a in letters if a in "zyx")
        if stacks and axes is None and image.ndim == len(space) + 1 and (channel_count(tensor) or 1) == 1:
            if len(planes) not in (1, image.shape[0]):
                raise UserError(f"the stacks of images have different lengths ({len(planes)} and {image.shape[0]})")
            planes = [{**(planes[k] if len(planes) > 1 else planes[0]), input_id: (image[k], space, f"{name}[{k}]")}
                      for k in range(image.shape[0])]
            continue
        image_axes, note = guess_axes(image.shape, axes, None, letters, channel_count(tensor), name)
        if note:
            echo(note)
        planes = [{**plane, input_id: (image, image_axes, name)} for plane in planes]
    results: dict[str, list[np.ndarray]] = {o: [] for o in model.output_ids}
    with open_predictor(model, mode, device, tile, halo, echo, denormalize=denormalize) as predictor:
        for k, arrays in enumerate(planes):
            members, space_voxels = sample_members(model, arrays)

            def of_all(done: int, total: int, k: int = k) -> None:  # tiles of every image together
                progress(k * total + done, len(planes) * total)

            outputs = predictor.predict(members, space_voxels, next(iter(images)), of_all)
            for output_id, array in outputs.items():
                results[output_id].append(array)
    letters_of = {o: "".join(axis_letters(t)) for o, t in zip(model.output_ids, model.descr.outputs)}
    return {o: (np.concatenate(arrays, axis=letters_of[o].index("b")) if len(arrays) > 1 else arrays[0], letters_of[o])
            for o, arrays in results.items()}
