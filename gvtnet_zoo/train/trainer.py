"""``gvtnet-zoo train``: fit a spec's network on image pairs, resumable, observable, data-parallel.

A run folder holds spec.yaml (resolved, with provenance), checkpoints/{last,best}.pt, metrics.csv,
TensorBoard events, train_curves.png and samples/step_N.png. Patches are a pure function of
(seed, rank, index), so a resumed run repeats an uninterrupted one step for step.
"""

from __future__ import annotations

import csv
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .. import __version__
from ..atomic import write_text_atomically
from ..config import Provenance, Spec
from ..data.lazy import LazyImage
from ..data.normalization import normalize_input, normalize_target, trained_on_csbdeep_patches
from ..data.pairs import ImagePair, PairedData, load_pairs, split_validation
from ..data.patches import PatchSampler
from ..errors import TrainingInterrupted, UserError
from ..image_io.images import write_tiff
from ..models import build_model
from ..models.layout import channels_last_input, prefers_channels_last, to_channels_last
from ..spec_loading import dump_spec
from . import distributed
from .checkpoint import NETWORK_REVISION, check_network_revision, load_checkpoint, save_checkpoint
from .interrupt import StopRequest, stop_on_interrupt
from .losses import compute_loss
from .observe import Observer, RunLog
from .precision import autocast
from .run_dir import RunDir, check_run_dir, spec_for_resume
from .validation import ValidationSet, best_score, best_validation, predict_whole, validate

VALIDATION_SEED_OFFSET = 1_000_003  # validation patches come from their own random stream


class _TrainingForward(nn.Module):
    """What DDP wraps: the network's forward, or (mean, scale) for the Laplace loss."""

    def __init__(self, model: nn.Module, with_scale: bool) -> None:
        super().__init__()
        self.model, self.with_scale = model, with_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_with_scale(x) if self.with_scale else self.model(x)


def _normalized(pairs: list[ImagePair], spec: Spec) -> list[ImagePair]:
    """Raw images normalized as the package will; CSBDeep patches (as_stored) are already normalized."""
    if spec.data.normalization == "as_stored":
        return pairs
    return [ImagePair(p.name, normalize_input(p.source, spec.data), normalize_target(p.target, spec.data)) for p in pairs]


def _with_data_normalization(spec: Spec, training: PairedData, held_out: Optional[PairedData]) -> Spec:
    """CSBDeep .npz patches: normalization as_stored, whole images in packages with CARE's prediction percentiles.

    Raw images must not be mixed with such patches: they would meet the network unnormalized.
    """
    kinds = {training.are_patches} | ({held_out.are_patches} if held_out is not None else set())
    if kinds == {True, False}:
        raise UserError("--data and --val must both be CSBDeep .npz patches or both be images; CSBDeep patches are "
                        "normalized already and raw images are not")
    if not training.are_patches:
        if spec.data.normalization == "as_stored":
            raise UserError("data.normalization 'as_stored' is for CSBDeep .npz patches; use percentile or zscore "
                            "for image folders and CSVs")
        return spec
    return trained_on_csbdeep_patches(spec)


def _split(spec: Spec, data: Path, val: Optional[Path]) -> tuple[Spec, PairedData, list[ImagePair], list[ImagePair]]:
    """(the spec with the data's normalization, the training data, training pairs, validation pairs)."""
    training = load_pairs(data, spec)
    held_out = load_pairs(val, spec) if val is not None else None
    spec = _with_data_normalization(spec, training, held_out)
    if held_out is None:
        train_pairs, val_pairs = split_validation(training, spec.data.val_fraction)
    else:
        train_pairs, val_pairs = training.pairs, held_out.pairs
    return spec, training, train_pairs, val_pairs


def _schedule(spec: Spec) -> Callable[[int], float]:
    every, factor = spec.train.lr_decay_every, spec.train.lr_decay_factor
    return (lambda step: factor ** (step // every)) if every else (lambda step: 1.0)


def _versions() -> dict[str, str]:
    return {"gvtnet_zoo": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _uses_channels_last(spec: Spec, device: torch.device, model: nn.Module) -> bool:
    setting = spec.train.channels_last
    return prefers_channels_last(device, model) if setting == "auto" else bool(setting)


def _batches(loader: DataLoader, device: torch.device, channels_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        yield (channels_last_input(x) if channels_last else x), y


def train(spec: Spec, data: str | Path, out: str | Path, val: str | Path | None = None, resume: bool = False,
          overwrite: bool = False, device: str = "auto", command: str = "", stop: Optional[StopRequest] = None,
          observer: Optional[Observer] = None) -> RunDir:
    """Train ``spec``'s network on ``data`` (folder, CSV or .npz) into the run folder ``out``; returns it.

    Raises UserError for bad input (before anything is written) and TrainingInterrupted on Ctrl-C or when
    ``stop`` is requested (from another thread; the checkpoint of the finished step is written first).
    ``observer`` hears losses, validations and checkpoint samples as they happen (train/observe.py).
    """
    ctx = distributed.setup(device)
    try:
        spec, run, train_pairs, val_pairs, start = _prepare(ctx, spec, Path(data), Path(out), val, resume, overwrite,
                                                            command)
        session = _Session.create(ctx, spec, run, train_pairs, val_pairs, start, observer)
        try:
            with stop_on_interrupt(stop) as stop:
                session.run(stop)
        except KeyboardInterrupt:  # a second Ctrl-C: the step in flight is lost, the last checkpoint stands
            raise TrainingInterrupted(f"stopped during step {session.step + 1}; continue from the last checkpoint "
                                      "with --resume") from None
        finally:
            session.log.close()
        if stop.requested:
            raise TrainingInterrupted(f"interrupted after step {session.step}; {run.last} holds it, "
                                      "continue with --resume")
        # rank 0 still writes the last checkpoint and sample: a rank that tore its process group down
        # earlier aborted at exit now and then ("terminate called without an active exception", ~2% of runs)
        ctx.barrier()
        return run
    finally:
        distributed.teardown(ctx)


def _prepare(ctx: distributed.Context, spec: Spec, data: Path, out: Path, val: str | Path | None, resume: bool,
             overwrite: bool, command: str) -> tuple[Spec, RunDir, list[ImagePair], list[ImagePair], Optional[dict]]:
    """Check everything, then (rank 0) lay out the run folder; returns the spec to train and normalized pairs."""
    run = RunDir(out)
    check_run_dir(run, resume, overwrite)
    if spec.data.batch_size % ctx.world_size:
        raise UserError(f"data.batch_size {spec.data.batch_size} cannot be split over {ctx.world_size} processes; "
                        "make it a multiple of the process count")
    spec, training, train_pairs, val_pairs = _split(spec, data, Path(val) if val else None)
    if resume:  # after _split, which records what the data's kind implies (CSBDeep patches: as_stored)
        spec = spec_for_resume(run, spec)
    spec = spec.model_copy(update={"provenance": Provenance(
        data=training.description, train_images=len(train_pairs), val_images=len(val_pairs),
        versions=_versions(), command=command)})
    start = load_checkpoint(run.last) if resume else None
    if start is not None:
        check_network_revision(start, spec, run.last)
    ctx.barrier()  # every rank has checked the inputs before rank 0 changes the folder
    if ctx.is_main:
        if overwrite:
            run.clear()
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        write_text_atomically(run.spec, dump_spec(spec))
        first = _in_memory(val_pairs[:1], spec.data.patch_size)[0]
        for path, image in zip(run.validation_sample, (first.source, first.target)):
            write_tiff(path, image)
    return spec, run, _normalized(train_pairs, spec), _in_memory(_normalized(val_pairs, spec), spec.data.patch_size), start


def _in_memory(pairs: list[ImagePair], patch: Sequence[int]) -> list[ImagePair]:
    """Validation pairs in memory: of Zarr volumes, a central crop each (data/lazy.py), whole images predicted."""
    return [ImagePair(p.name, *[a.preview(tuple(patch)) if isinstance(a, LazyImage) else a for a in (p.source, p.target)])
            for p in pairs]


@dataclass
class _Session:
    """The state of one training process: what it trains, with what, and how far it got."""

    ctx: distributed.Context
    spec: Spec
    run_dir: RunDir
    model: nn.Module
    forward: nn.Module  # the model as trained: with the scale head for the Laplace loss, DDP-wrapped if distributed
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    loader: DataLoader
    validation: ValidationSet
    log: RunLog
    step: int
    best_score: float  # train.best_by's validation value, signed so that lower is better
    channels_last: bool

    @classmethod
    def create(cls, ctx: distributed.Context, spec: Spec, run: RunDir, train_pairs: list[ImagePair],
               val_pairs: list[ImagePair], start: Optional[dict], observer: Optional[Observer] = None) -> "_Session":
        torch.manual_seed(spec.train.seed)
        model = build_model(spec).to(ctx.device)
        channels_last = _uses_channels_last(spec, ctx.device, model)
        if channels_last:
            to_channels_last(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=spec.train.lr, betas=spec.train.betas)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(spec))
        scaler = torch.amp.GradScaler("cuda", enabled=ctx.device.type == "cuda" and spec.train.amp == "fp16")
        step, best = 0, float("inf")
        if start is not None:
            model.load_state_dict(start["model"])
            optimizer.load_state_dict(start["optimizer"])
            scheduler.load_state_dict(start["scheduler"])
            scaler.load_state_dict(start["scaler"])
            torch.set_rng_state(start["torch_rng"])
            step, best = start["step"], start["best_score"] if "best_score" in start else start["best_val_loss"]
        with_scale = spec.train.loss == "laplace_nll"
        forward: nn.Module = _TrainingForward(model, with_scale)
        if ctx.distributed:
            # a scale head that the loss does not use gets no gradient, which DDP must be told about
            idle_head = getattr(model, "sigma_head", None) is not None and not with_scale
            forward = DistributedDataParallel(forward, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                                              find_unused_parameters=idle_head)
        per_rank = spec.data.batch_size // ctx.world_size
        patches = PatchSampler(train_pairs, spec.data.patch_size, spec.train.seed, ctx.rank, spec.data.flips,
                               spec.data.rotations, spec.data.foreground_bias)
        loader = DataLoader(patches, batch_size=per_rank, sampler=range(step * per_rank, spec.train.steps * per_rank),
                            num_workers=spec.data.workers, pin_memory=ctx.device.type == "cuda", drop_last=True)
        val_sampler = PatchSampler(val_pairs, spec.data.patch_size, spec.train.seed + VALIDATION_SEED_OFFSET)
        val_items = [val_sampler[i] for i in range(spec.data.val_patches)]
        validation = ValidationSet((torch.stack([v[0] for v in val_items]), torch.stack([v[1] for v in val_items])),
                                   val_pairs[: spec.train.val_max_images])
        log = RunLog(run, spec.train.steps, step, ctx.is_main, observer)
        if step == 0 and ctx.device.type == "cpu" and spec.train.amp == "fp16":
            log.message("train.amp fp16 applies on CUDA only; training in float32 on the CPU (bf16 runs on CPUs)")
        return cls(ctx, spec, run, model, forward, optimizer, scheduler, scaler, loader, validation, log, step, best,
                   channels_last)

    def checkpoint(self, path: Path) -> None:
        save_checkpoint(path, {
            "step": self.step, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "best_score": self.best_score, "torch_rng": torch.get_rng_state(),
            "spec": self.spec.model_dump(mode="json"), "gvtnet_zoo": __version__,
            "network_revision": NETWORK_REVISION,
        })

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(self.spec.train.amp, self.ctx.device):
            loss = compute_loss(self.spec.train.loss, self.forward(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.spec.train.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.spec.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return loss.detach().float()

    def _validate(self) -> None:
        size_step = self.spec.model.size_step()
        batch = self.spec.data.batch_size // self.ctx.world_size
        metrics, _ = validate(self.model, self.spec.train.loss, self.validation, size_step, self.ctx.device, batch)
        self.log.validation(self.step, metrics, self.validation.input_nrmse())
        score = best_score(metrics, self.spec.train.best_by)
        if score < self.best_score:
            self.best_score = score
            self.checkpoint(self.run_dir.best)

    def _save(self) -> None:
        self.checkpoint(self.run_dir.last)
        first = self.validation.images[0]
        was_training = self.model.training
        self.model.eval()
        prediction = predict_whole(self.model, first.source, self.spec.model.size_step(), self.ctx.device)
        self.model.train(was_training)
        self.log.sample(self.step, first.source, prediction, first.target,
                        f"{self.spec.name}, step {self.step}: {first.name}")

    def run(self, stop: StopRequest) -> None:
        """Train until train.steps, or until ``stop`` is requested (then last.pt holds the finished step)."""
        train = self.spec.train
        running_loss, running_count = torch.zeros((), device=self.ctx.device), 0
        for x, y in _batches(self.loader, self.ctx.device, self.channels_last):
            running_loss += self._train_step(x, y)
            running_count += 1
            self.log.step()
            last = self.step == train.steps
            if self.step % train.log_every == 0 or last:  # reading the loss syncs the GPU: only at log steps
                mean_loss = float(running_loss) / running_count
                if not np.isfinite(mean_loss):
                    raise UserError(f"the training loss became {mean_loss} by step {self.step}; lower train.lr, "
                                    "set train.grad_clip, or check the data's normalization")
                self.log.train_loss(self.step, mean_loss, self.scheduler.get_last_lr()[0])
                running_loss.zero_()
                running_count = 0
            if self.ctx.is_main and (self.step % train.val_every == 0 or last):
                self._validate()
            if self.ctx.is_main and (self.step % train.checkpoint_every == 0 or last or stop.requested):
                self._save()
            if stop.requested:
                return
        self.log.message(f"done: {self.step} steps; checkpoints in {self.run_dir.checkpoints}, "
                         f"curves in {self.run_dir.curves}")
        if self.ctx.is_main and self.run_dir.metrics.exists():
            with self.run_dir.metrics.open(newline="") as handle:
                best = best_validation(list(csv.DictReader(handle)), train.best_by)
            if best is not None:
                rule = {"loss": "lowest validation loss", "nrmse": "lowest NRMSE", "pearson_r": "highest Pearson r"}
                self.log.message(f"best.pt is step {best['step']} ({rule[train.best_by]}, train.best_by): val loss "
                                 f"{float(best['val_loss']):.4g}, NRMSE {float(best['val_nrmse']):.4f}, "
                                 f"Pearson r {float(best['val_pearson_r']):.4f}")
