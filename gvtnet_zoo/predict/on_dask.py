"""The Dask executor of streamed prediction: tiles as tasks on a ``dask.distributed`` cluster.

Each worker builds the tile step once (the model loaded, the store opened) and keeps it; a task gets the
plan's tile, reads it from the store itself and writes its core to the output store, so voxels never pass
through the client. Tiles run in the plan's write waves: two tasks at once never write to one chunk. Dask reruns the tasks of a worker that dies; a tile written twice is written the same.
Global context: per GVTO, every tile's K^T V and query count are summed by a tree reduction on the
workers, and the sums (a few kB) are the arguments of the later passes.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from tqdm import tqdm

from ..errors import UserError
from .halo_check import SeamCheck
from .tile_step import StreamJob, TileStep

_STEPS: dict[int, tuple[TileStep, threading.Lock]] = {}  # per worker process: the step of the current job


def _step(job: StreamJob) -> tuple[TileStep, threading.Lock]:
    key = hash(repr(job))
    if key not in _STEPS:  # the model stays loaded in the worker (tile_step.loaded_model); the old job's step goes
        _STEPS.clear()
        _STEPS[key] = (TileStep(job), threading.Lock())
    return _STEPS[key]


def _predict_task(job: StreamJob, time: int, tile: Any, stat: dict[Any, Any], contexts: Optional[list[Any]],
                  keep: bool) -> Optional[Any]:
    """Predict and write one tile; ``keep``: return its whole first output (the halo check's few tiles)."""
    step, lock = _step(job)
    with lock:
        blocks = step.predict(tile, time, stat, contexts)
        kept = step.last_output if keep else None
    key = f"{time}-{tile.index}"
    for output_id, (place, block) in blocks.items():
        job.outputs[output_id].write(key, place, block)
    return kept


def _collect_task(job: StreamJob, time: int, tile: Any, stat: dict[Any, Any], index: int, contexts: list[Any]) -> Any:
    step, lock = _step(job)
    with lock:
        return step.collect(tile, time, stat, index, contexts)


def _merge_task(*parts: Any) -> Any:
    from .global_context import merge_contexts

    return merge_contexts(list(parts))


class DaskExecutor:
    """A client of an existing scheduler (address or scheduler file), or of a LocalCluster made here."""

    def __init__(self, address: str, device: str, workers: Optional[int] = None,
                 echo: Callable[[str], None] = print) -> None:
        from distributed import Client, LocalCluster

        self.cluster = None
        started = time.perf_counter()
        try:
            if address == "local":
                workers = workers or _local_workers(device)
                # one thread per worker, and one torch thread per worker: the workers are the parallelism
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
                self.client = Client(self.cluster)
            elif Path(address).is_file():
                self.client = Client(scheduler_file=address, timeout="30s")
            else:
                self.client = Client(address, timeout="30s")
        except OSError as err:
            raise UserError(f"--dask {address}: cannot reach the scheduler ({err}); check the address or "
                            "scheduler file") from None
        echo(f"Dask: {self.describe()} (cluster up in {time.perf_counter() - started:.1f} s)")

    def describe(self) -> str:
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        return f"{len(workers)} Dask worker(s)"

    def _tree_sum(self, futures: list[Any]) -> Any:
        while len(futures) > 1:
            futures = [self.client.submit(_merge_task, *futures[i:i + 2], pure=False) if i + 1 < len(futures)
                       else futures[i] for i in range(0, len(futures), 2)]
        return futures[0]

    def run(self, job: StreamJob, todo: dict[int, list[Any]], bar: tqdm, statistics: Callable[[int], Any],
            check: SeamCheck) -> None:
        """Every time point's remaining tiles as tasks; ``check`` sees the first time point's few it wants."""
        from distributed import as_completed

        # hash=False: keys of their own; equal contents (the empty statistics of every image, say) would share a key,
        # and the release of the last image's copy could cancel the tasks of the next ("lost dependencies")
        [shared] = self.client.scatter([job], broadcast=True, hash=False)
        tiles = job.plan.tiles()
        for point, remaining in todo.items():
            # in a list: a dict would be scattered value by value, keyed by the measures, the same at every time point
            [stat] = self.client.scatter([statistics(point)], broadcast=True, hash=False)
            contexts: Optional[list[Any]] = None
            if job.global_context:
                contexts = []
                for index in range(job.gvtos):
                    parts = [self.client.submit(_collect_task, shared, point, t, stat, index, list(contexts), pure=False)
                             for t in tiles]
                    contexts.append(self._tree_sum(parts))
                    bar.set_postfix_str(f"context {index + 1}")
            first = point == min(todo)
            for wave in job.plan.write_waves(remaining):  # tiles running at once never write to one chunk
                futures = {self.client.submit(_predict_task, shared, point, tile, stat, contexts,
                                              first and check.wants(tile.index), pure=False): tile for tile in wave}
                for finished in as_completed(futures):
                    kept = finished.result()  # a task's error stops the run here
                    if kept is not None:
                        check.offer(futures[finished], kept)
                    bar.update()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _local_workers(device: str) -> int:
    """One worker per GPU when the model runs on CUDA, else one per core."""
    if device != "cpu":
        from ..devices import torch_cuda_available

        if torch_cuda_available():
            import torch

            return torch.cuda.device_count()
    return os.cpu_count() or 1
