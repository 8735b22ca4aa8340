"""One tile of a streamed prediction, the same under every executor: read the tile's region from the store,
run the package's own preprocessing (with the whole image's statistics), the network (the package's pipeline,
or gvtnet-zoo's context network for global context) and postprocessing, and cut out the tile's core.

A ``StreamJob`` is plain data; a ``TileStep`` is built from it once per process (or Dask worker) and kept; the
model it runs is loaded once per process and kept from one job (image) to the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..errors import refuse_non_finite
from ..image_io.ome_zarr_out import OutputImage
from ..image_io.volumes import VolumeSource, read_region
from .denormalize import denormalization, denormalize_sample
from .network_call import run_network
from .plan import Tile, TilePlan


@dataclass(frozen=True)
class StreamJob:
    model_source: str
    weight_format: Optional[str]
    device: str
    allow_download: bool
    global_context: bool
    source: VolumeSource
    input_id: str
    input_dims: tuple[str, ...]  # the model input's axis ids
    letters: str  # the same as letters of 'bczyx'
    plan: TilePlan
    outputs: dict[str, OutputImage]  # output id -> where it goes
    output_dims: dict[str, tuple[str, ...]]
    gvtos: int = 0  # global context: the network's GVTOs, one collecting pass each
    model_sha256: str = ""  # the package's bytes: a package re-made at the same path is another model
    denormalize: bool = False  # --denormalize: each block mapped back with the whole volume's percentiles
    keep_bytes: Optional[int] = None  # global context: what kept pass states may take (--memory; predict/budget.py)
    memory: Optional[int] = None  # --memory: one process's level-by-level forward within it (predict/stagewise.py)


def read_tile(job: StreamJob, array: Any, region: dict[str, tuple[int, int]], time: int) -> np.ndarray:
    """A region (on the padded grid) of one time point, float32 in the model's axes; the padding read from the
    image itself as the plan's border pads the whole image in memory."""
    plans = {a.axis: a for a in job.plan.axes}
    indices = {a: job.plan.border.source_index(np.arange(start, stop), plans[a].size, plans[a].before)
               for a, (start, stop) in region.items()}
    spans = {a: (int(i.min()), int(i.max()) + 1) for a, i in indices.items()}
    block = read_region(array, job.source, time, spans, job.letters)
    refuse_non_finite(block, job.source.name)  # before the statistics pass and every tile: nothing NaN is written
    for a, wanted in indices.items():
        if wanted.size != spans[a][1] - spans[a][0] or (np.diff(wanted) != 1).any():
            block = np.take(block, wanted - spans[a][0], axis=job.letters.index(a))
    return block


def stat_measures(descr: Any) -> tuple[set[Any], list[Any], list[Any]]:
    """(sample measures the processing needs, preprocessing ops and postprocessing ops without the op that
    computes statistics from the sample itself: a tile is not the sample)."""
    from bioimageio.core.proc_ops import UpdateStats
    from bioimageio.core.proc_setup import get_requried_sample_measures, setup_pre_and_postprocessing

    from ..errors import UserError

    procs = setup_pre_and_postprocessing(descr, dataset_for_initial_statistics=())
    needed = get_requried_sample_measures(descr)
    inputs = {str(t.id) for t in descr.inputs}
    on_outputs = [m for m in needed.pre | needed.post if str(m.member_id) not in inputs]
    if on_outputs:
        raise UserError(f"the package's postprocessing needs statistics of its output {on_outputs[0].member_id}, which "
                        "a streamed prediction cannot know before the end; predict this image without "
                        "--out-format ome-zarr / --dask")
    keep = lambda ops: [op for op in ops if not isinstance(op, UpdateStats)]  # noqa: E731
    return needed.pre | needed.post, keep(procs.pre), keep(procs.post)


@dataclass
class LoadedModel:
    """A package loaded for tiles: its description, processing ops without the statistics op, and the network
    (bioimageio.core's pipeline, or gvtnet-zoo's context network for global context)."""

    model: Any
    pre: list[Any]
    post: list[Any]
    pipeline: Any = None
    network: Any = None

    def unload(self) -> None:
        if self.pipeline is not None:
            self.pipeline.unload()


# one loaded model per process (a Dask worker, or the local executor's process), kept from one image to the next:
# loading and unloading it per image cost more than predicting a small volume
_LOADED: dict[tuple[Any, ...], LoadedModel] = {}


def loaded_model(job: StreamJob) -> LoadedModel:
    """The job's model, loaded once per process; a job with another model (or package bytes) replaces it."""
    key = (job.model_source, job.model_sha256, job.weight_format, job.device, job.allow_download, job.global_context)
    if key not in _LOADED:
        release_models()
        from .model import load_zoo_model

        model = load_zoo_model(job.model_source, job.weight_format, job.device, lambda _: None,
                               allow_download=job.allow_download)
        _, pre, post = stat_measures(model.descr)
        loaded = LoadedModel(model, pre, post)
        if job.global_context:
            from ..devices import choose_device
            from .global_context import context_network_from_package

            loaded.network = context_network_from_package(model.descr, str(choose_device(job.device)))
        else:
            from .model import create_pipeline

            loaded.pipeline = create_pipeline(model)
            loaded.pipeline.load()
        _LOADED[key] = loaded
    return _LOADED[key]


def release_models() -> None:
    """Unload the model this process keeps (the end of a local run; a worker given another model)."""
    for loaded in _LOADED.values():
        loaded.unload()
    _LOADED.clear()


class TileStep:
    """One job's tiles: the process's loaded model and the job's input array; ``collect`` and ``predict`` run one
    tile."""

    def __init__(self, job: StreamJob) -> None:
        self.job = job
        loaded = loaded_model(job)
        self.model, self.pre, self.post = loaded.model, loaded.pre, loaded.post
        self.pipeline, self.network = loaded.pipeline, loaded.network
        if self.network is not None:  # the model is loaded once per process; the budget is the job's
            self.network.keep_bytes, self.network.memory = job.keep_bytes, job.memory
        self.array = job.source.open()
        self.denormalization = denormalization(self.model.descr) if job.denormalize else None
        self.last_output: Optional[np.ndarray] = None

    def _preprocessed(self, tile: Tile, time: int, stat: dict[Any, Any]) -> Any:
        return self._region(tile.read, time, stat, f"tile{tile.index}")

    def _region(self, region: dict[str, tuple[int, int]], time: int, stat: dict[Any, Any], name: str) -> Any:
        from bioimageio.core import Tensor
        from bioimageio.core.sample import Sample

        sample = Sample(members={self.job.input_id: Tensor.from_numpy(read_tile(self.job, self.array, region, time), dims=self.job.input_dims)},
                        stat=dict(stat), id=name)
        for op in self.pre:
            op(sample)
        return sample

    def volume_image(self, time: int, stat: dict[Any, Any]) -> "VolumeImage":
        """The network's input over the whole padded volume of one time point, read and preprocessed by region
        (the level-by-level forward's input, predict/stagewise.py)."""
        return VolumeImage(self, time, stat)

    def _network_input(self, sample: Any) -> np.ndarray:
        return sample.members[self.job.input_id].transpose(self.job.input_dims).data.to_numpy().astype(np.float32)

    def _core(self, tile: Tile) -> list[tuple[int, int, int]]:
        return [(tile.cores[a][0] - tile.read[a][0], tile.cores[a][1] - tile.read[a][0], tile.read[a][1] - tile.read[a][0])
                for a in self.job.letters if a in tile.read]

    def collect(self, tile: Tile, time: int, stat: dict[Any, Any], index: int, contexts: list[Any],
                key: Any = None) -> Any:
        """Global context: GVTO ``index``'s K^T V and query count over this tile's core. ``key``: the tile's, when
        all its passes run in this process (they then resume where the last stopped; predict/pass_reuse.py)."""
        sample = self._preprocessed(tile, time, stat)
        return self.network.collect_tile(self._network_input(sample), self._core(tile), index, contexts, key)

    def predict(self, tile: Tile, time: int, stat: dict[Any, Any], contexts: Optional[list[Any]] = None,
                key: Any = None, network_output: Optional[np.ndarray] = None) -> dict[str, tuple[tuple[slice, ...], np.ndarray]]:
        """Output id -> (where in the whole output, the core block), batch axis dropped. The first output of the
        whole tile stays in ``last_output`` (the halo check). ``network_output``: the network's output over the
        tile, computed already (the level-by-level forward): only the postprocessing runs."""
        from bioimageio.core import Tensor
        from bioimageio.core.sample import Sample

        if network_output is not None:
            (output_id,) = self.job.outputs
            members = {output_id: Tensor.from_numpy(network_output, dims=self.job.output_dims[output_id])}
            sample_stat, sample_id = dict(stat), f"tile{tile.index}"
        else:
            sample = self._preprocessed(tile, time, stat)
            sample_stat, sample_id = sample.stat, sample.id
            if self.network is not None:
                (output_id,) = self.job.outputs
                predicted = self.network.predict_tile(self._network_input(sample), contexts, key)
                members = {output_id: Tensor.from_numpy(predicted, dims=self.job.output_dims[output_id])}
            else:
                out = run_network(self.pipeline, sample, self.model.weight_format)
                members = {str(k): v for k, v in out.members.items()}
        result = Sample(members=members, stat=sample_stat, id=sample_id)
        for op in self.post:
            op(result)
        if self.denormalization is not None:  # ``stat`` holds the volume's percentiles (predict/stats.py)
            denormalize_sample(self.denormalization, result, stat)
        blocks = {}
        for index, (output_id, image) in enumerate(self.job.outputs.items()):
            data = result.members[output_id].transpose(self.job.output_dims[output_id]).data.to_numpy()
            if index == 0:
                self.last_output = data
            local, place = self.job.plan.output_region(output_id, tile, data.shape)
            dims = self.job.output_dims[output_id]
            core = data[local]
            core = core[0] if dims[0] == "batch" else core  # the batch axis is the time point
            place = place[1:] if dims[0] == "batch" else place
            blocks[output_id] = ((time, *place) if image.axes.startswith("t") else place, core.astype(np.float32))
        return blocks


class VolumeImage:
    """A streamed volume's network input (1, C_in, *padded space) as predict/stagewise.py's ``Image``."""

    def __init__(self, step: TileStep, time: int, stat: dict[Any, Any]) -> None:
        self.step, self.time, self.stat = step, time, stat
        self.letters = [a.axis for a in step.job.plan.axes]
        channels = step.network.level_by_level().geometry.channels["x"]
        self.shape = (1, channels, *[a.padded for a in step.job.plan.axes])

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        sample = self.step._region({a: (r.start, r.stop) for a, r in zip(self.letters, region)}, self.time, self.stat,
                                   "region")
        return self.step._network_input(sample)
