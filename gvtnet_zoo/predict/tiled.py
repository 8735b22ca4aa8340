"""Tiled prediction in memory: the tile plan (predict/plan.py) run over an image held in memory.

The sample is normalized once, from the image as given (percentiles and means never see padding), then
padded up to the plan's valid size as the plan's border says; each tile of the plan is cut from it, predicted, and its core written
into the output array, which is postprocessed once. Streamed and Dask prediction run the same tiles with
the same statistics, so the three agree to float rounding.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
from tqdm import tqdm

from ..progress import Progress, no_progress
from .halo_check import tile_check
from .network_call import run_network
from .plan import TilePlan, plan_tiles


def same_grid(descr: Any, sample: Any) -> bool:
    """Whether every input has the first input's space axes at the same sizes (one region cuts all)."""
    first = descr.inputs[0]
    axes = {a.id: sample.members[first.id].sizes[a.id] for a in first.axes if a.type == "space"}
    return all({a.id: sample.members[t.id].sizes[a.id] for a in t.axes if a.type == "space"} == axes
               for t in descr.inputs[1:])


def plan_for_sample(descr: Any, sample: Any, tile: dict[str, int], halo: dict[str, int]) -> TilePlan:
    """The tile plan of an (unpadded) sample's first input, every image of its batch (a TIFF's time points)."""
    tensor = descr.inputs[0]
    sizes = {str(a.id): int(sample.members[tensor.id].sizes[a.id]) for a in tensor.axes if a.type == "space"}
    batch = [int(sample.members[tensor.id].sizes[a.id]) for a in tensor.axes if a.type == "batch"]
    return plan_tiles(descr, sizes, tile, halo, batch[0] if batch else 1)


def predict_tiled(pipeline: Any, descr: Any, sample: Any, plan: TilePlan, progress_name: str, weights: str,
                  warn: Callable[[str], None] = print, progress: Progress = no_progress,
                  plain_warning: Optional[str] = None) -> Any:
    """Predict an unpadded ``sample`` tile by tile as ``plan`` says; returns the postprocessed output sample, at
    the outputs' whole-image sizes. Several inputs must share one grid (``same_grid``); ``weights`` names the network in errors. ``progress`` hears
    (done, total) tiles; a halo too small for the network gets one ``warn`` line (predict/halo_check.py), a GVTNet's
    plain tiles ``plain_warning`` instead."""
    from bioimageio.core import Tensor
    from bioimageio.core.sample import Sample
    from bioimageio.spec.model import v0_5

    pipeline.apply_preprocessing(sample)  # statistics of the image as given
    widths = {v0_5.AxisId(a.axis): (a.before, a.padded - a.size - a.before) for a in plan.axes}
    if any(sum(w) for w in widths.values()):
        for tensor in descr.inputs:
            sample.members[tensor.id] = sample.members[tensor.id].pad(widths, mode=plan.border.mode)
    dims = {str(o.id): [a.id for a in o.axes] for o in descr.outputs}
    outputs: dict[str, np.ndarray] = {}
    check = tile_check(plan, progress_name, warn, plain_warning)
    tiles = plan.tiles()
    for tile in tqdm(tiles, desc=f"  {progress_name}", unit="tile", leave=False, disable=len(tiles) < 2):
        progress(tile.index, len(tiles))
        region = {v0_5.AxisId(a): slice(start, stop) for a, (start, stop) in tile.read.items()}
        members = {t.id: sample.members[t.id][region] for t in descr.inputs}
        out = run_network(pipeline, Sample(members=members, stat=sample.stat, id=sample.id), weights)
        for index, output_id in enumerate(dims):
            data = out.members[v0_5.TensorId(output_id)].transpose(dims[output_id]).data.to_numpy()
            if index == 0:
                check.offer(tile, data)
            local, place = plan.output_region(output_id, tile, data.shape)
            if output_id not in outputs:
                shape = [data.shape[k] if a.size < 0 else a.size for k, a in enumerate(plan.outputs[output_id])]
                outputs[output_id] = np.zeros(shape, np.float32)
            outputs[output_id][place] = data[local]
    progress(len(tiles), len(tiles))
    result = Sample(members={v0_5.TensorId(o): Tensor.from_numpy(a, dims=dims[o]) for o, a in outputs.items()},
                    stat=sample.stat, id=sample.id)
    pipeline.apply_postprocessing(result)
    return result
