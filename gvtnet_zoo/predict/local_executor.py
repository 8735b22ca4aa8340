"""The local executor of streamed prediction: every tile in this process, in order, written to the outputs as
it is predicted (predict/on_dask.py runs the same tiles as Dask tasks)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
from tqdm import tqdm

from ..progress import Progress, no_progress
from .halo_check import SeamCheck
from .stats import volume_statistics
from .tile_step import StreamJob, TileStep


def run_local(job: StreamJob, step: TileStep, todo: dict[int, list[Any]], bar: tqdm, check: SeamCheck,
              progress: Progress = no_progress, echo: Callable[[str], None] = lambda _: None) -> None:
    """Every time point's tiles in this process, in order; global context first sums each GVTO's context.
    ``progress`` hears (tiles written, tiles to write) before each tile; ``check`` sees the first time point's."""
    tiles = job.plan.tiles()
    first = min(todo, default=0)
    levels = step.network.level_by_level() if job.global_context and step.network is not None else None
    if levels is not None and len(tiles) > 1 and not _scratch_fits(job, step, levels, bar, echo):
        levels = None
    for time, remaining in todo.items():
        stat = volume_statistics(job, step.model.descr, step.array, time, echo)
        if levels is not None and len(tiles) > 1:
            _levels_time_point(job, step, levels, time, stat, remaining, bar, check if time == first else None, progress)
            continue
        contexts: Optional[list[Any]] = None
        if job.global_context:
            from .global_context import merge_contexts

            contexts = []
            for index in range(job.gvtos):
                # keyed: every pass of a tile runs here, so each resumes where its last one stopped
                contexts.append(merge_contexts([step.collect(t, time, stat, index, contexts,
                                                             (job.source.name, time, t.index)) for t in tiles]))
                bar.set_postfix_str(f"context {index + 1}/{job.gvtos}")
        for tile in remaining:
            progress(bar.n, bar.total)
            key = (job.source.name, time, tile.index)
            for output_id, (place, block) in step.predict(tile, time, stat, contexts, key).items():
                job.outputs[output_id].write(f"{time}-{tile.index}", place, block)
            if time == first and step.last_output is not None:
                check.offer(tile, step.last_output)
            bar.update()


def _scratch_fits(job: StreamJob, step: TileStep, levels: Any, bar: tqdm, echo: Callable[[str], None]) -> bool:
    """Whether the level-by-level forward's scratch files fit the temporary folder; if not, says so once (on its
    own line, not the progress bar's) and the tile passes run instead."""
    from .stagewise import scratch_shortfall

    shape = step.volume_image(0, {}).shape
    _, store_bytes = step.network.level_budgets(levels, shape, int(np.prod([a.tile for a in job.plan.axes])))
    note = scratch_shortfall(levels, shape, store_bytes, job.source.name, out_in_memory=False)
    if note is None:
        return True
    bar.clear()
    echo(note)
    bar.refresh()
    return False


def _levels_time_point(job: StreamJob, step: TileStep, levels: Any, time: int, stat: dict[Any, Any],
                       remaining: list[Any], bar: tqdm, check: Optional[SeamCheck], progress: Progress) -> None:
    """Global context level by level (predict/stagewise.py): the network's output over the whole padded volume
    into scratch files (within ``--memory``, else the plan's tile memory), then each remaining tile postprocessed
    and written from it. Not resumable within a time point: an interrupted one is computed again."""
    from .value_store import ValueStore

    image = step.volume_image(time, stat)
    tile_voxels = int(np.prod([a.tile if a.tiled else a.padded for a in job.plan.axes]))
    tile_bytes, store_bytes = step.network.level_budgets(levels, image.shape, tile_voxels)
    with ValueStore() as store:
        levels.run(image, store, tile_bytes, store_bytes, job.source.name, out_in_memory=False)
        for tile in remaining:
            progress(bar.n, bar.total)
            region = levels.region("out", tuple((*tile.cores[a.axis], *tile.read[a.axis]) for a in job.plan.axes))
            out = np.empty((1, levels.geometry.channels["out"], *[r.stop - r.start for r in region]), np.float32)
            store.read("out", region, out)
            for output_id, (place, block) in step.predict(tile, time, stat, network_output=out).items():
                job.outputs[output_id].write(f"{time}-{tile.index}", place, block)
            if check is not None and step.last_output is not None:
                check.offer(tile, step.last_output)
            bar.update()
