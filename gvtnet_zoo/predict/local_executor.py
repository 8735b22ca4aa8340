"""The local executor of streamed prediction: every tile in this process, in order, written to the outputs as
it is predicted (predict/on_dask.py runs the same tiles as Dask tasks)."""

from __future__ import annotations

from typing import Any, Callable, Optional

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
    for time, remaining in todo.items():
        stat = volume_statistics(job, step.model.descr, step.array, time, echo)
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
