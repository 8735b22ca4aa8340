"""``gvtnet-zoo train``: fit a spec's network on image pairs, resumable, observable, data-parallel.

A run folder holds spec.yaml (resolved, with provenance), checkpoints/{last,best}.pt, metrics.csv,
TensorBoard events, train_curves.png and samples/step_N.png. Patches are a pure function of
(seed, rank, index), so a resumed run repeats an uninterrupted one step for step.
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .. import __version__
from ..atomic import write_text_atomically
from ..config import Provenance, Spec
from ..data.normalization import normalize_input, normalize_target
from ..data.pairs import ImagePair, PairedData, load_pairs, split_validation
from ..data.patches import PatchSampler
from ..errors import UserError
from ..models import build_model
from ..spec_loading import dump_spec
from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .losses import compute_loss
from .observe import RunLog, save_sample
from .run_dir import RunDir, check_run_dir, spec_for_resume
from .validation import ValidationSet, predict_whole, validate

VALIDATION_SEED_OFFSET = 1_000_003  # validation patches come from their own random stream


class TrainingInterrupted(Exception):
    """Ctrl-C during training; last.pt holds the last finished step."""


class _TrainingForward(nn.Module):
    """What DDP wraps: the network's forward, or (mean, scale) for the Laplace loss."""

    def __init__(self, model: nn.Module, with_scale: bool) -> None:
        super().__init__()
        self.model, self.with_scale = model, with_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_with_scale(x) if self.with_scale else self.model(x)


def _normalized(pairs: list[ImagePair], spec: Spec) -> list[ImagePair]:
    return [ImagePair(p.name, normalize_input(p.source, spec.data), normalize_target(p.target, spec.data)) for p in pairs]


def _split(spec: Spec, data: Path, val: Optional[Path]) -> tuple[PairedData, list[ImagePair], list[ImagePair]]:
    training = load_pairs(data, spec)
    if val is None:
        train_pairs, val_pairs = split_validation(training, spec.data.val_fraction)
    else:
        held_out = load_pairs(val, spec)
        train_pairs, val_pairs = training.pairs, held_out.pairs
    return training, train_pairs, val_pairs


def _schedule(spec: Spec) -> Callable[[int], float]:
    every, factor = spec.train.lr_decay_every, spec.train.lr_decay_factor
    return (lambda step: factor ** (step // every)) if every else (lambda step: 1.0)


def _versions() -> dict[str, str]:
    return {"gvtnet_zoo": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _autocast(spec: Spec, device: torch.device) -> contextlib.AbstractContextManager:
    if device.type != "cuda" or spec.train.amp == "off":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if spec.train.amp == "bf16" else torch.float16)


def _batches(loader: DataLoader, device: torch.device, channels_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.to(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)
        yield x, y


def train(spec: Spec, data: str | Path, out: str | Path, val: str | Path | None = None, resume: bool = False,
          overwrite: bool = False, device: str = "auto", command: str = "") -> RunDir:
    """Train ``spec``'s network on ``data`` (folder, CSV or .npz) into the run folder ``out``; returns it."""
    context = distributed.setup(device)
    try:
        return _train(context, spec, Path(data), Path(out), Path(val) if val else None, resume, overwrite, command)
    finally:
        distributed.teardown(context)


def _train(ctx: distributed.Context, spec: Spec, data: Path, out: Path, val: Optional[Path], resume: bool,
           overwrite: bool, command: str) -> RunDir:
    run = RunDir(out)
    check_run_dir(run, resume, overwrite)
    if resume:
        spec = spec_for_resume(run, spec)
    if spec.data.batch_size % ctx.world_size:
        raise UserError(f"data.batch_size {spec.data.batch_size} cannot be split over {ctx.world_size} processes; "
                        "make it a multiple of the process count")
    training, train_pairs, val_pairs = _split(spec, data, val)
    spec = spec.model_copy(update={"provenance": Provenance(
        data=training.description, train_images=len(train_pairs), val_images=len(val_pairs),
        versions=_versions(), command=command)})
    start = load_checkpoint(run.last) if resume else None
    ctx.barrier()  # every rank has checked the inputs before rank 0 changes the folder
    if ctx.is_main:
        if overwrite:
            run.clear()
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        write_text_atomically(run.spec, dump_spec(spec))
    train_pairs, val_pairs = _normalized(train_pairs, spec), _normalized(val_pairs, spec)

    torch.manual_seed(spec.train.seed)
    model = build_model(spec).to(ctx.device)
    channels_last = spec.train.channels_last and ctx.device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last if spec.model.input_dims == 2 else torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.train.lr, betas=spec.train.betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(spec))
    scaler = torch.amp.GradScaler("cuda", enabled=ctx.device.type == "cuda" and spec.train.amp == "fp16")
    first_step, best_val_loss = 0, float("inf")
    if start is not None:
        model.load_state_dict(start["model"])
        optimizer.load_state_dict(start["optimizer"])
        scheduler.load_state_dict(start["scheduler"])
        scaler.load_state_dict(start["scaler"])
        torch.set_rng_state(start["torch_rng"])
        first_step, best_val_loss = start["step"], start["best_val_loss"]
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
    loader = DataLoader(patches, batch_size=per_rank, sampler=range(first_step * per_rank, spec.train.steps * per_rank),
                        num_workers=spec.data.workers, pin_memory=ctx.device.type == "cuda", drop_last=True,
                        persistent_workers=False)
    val_sampler = PatchSampler(val_pairs, spec.data.patch_size, spec.train.seed + VALIDATION_SEED_OFFSET)
    val_items = [val_sampler[i] for i in range(spec.data.val_patches)]
    validation = ValidationSet((torch.stack([v[0] for v in val_items]), torch.stack([v[1] for v in val_items])),
                               val_pairs[: spec.train.val_max_images])

    log = RunLog(run, spec.train.steps, first_step, ctx.is_main)
    if first_step == 0 and ctx.device.type == "cpu" and spec.train.amp != "off":
        log.message(f"train.amp {spec.train.amp} applies on CUDA only; training in float32 on the CPU")
    input_nrmse = validation.input_nrmse() if ctx.is_main else None
    state = {"step": first_step, "best": best_val_loss}

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, {
            "step": state["step"], "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "best_val_loss": state["best"],
            "torch_rng": torch.get_rng_state(), "spec": spec.model_dump(mode="json"), "gvtnet_zoo": __version__,
        })

    step_size = spec.model.size_step()
    running_loss, running_count = torch.zeros((), device=ctx.device), 0
    try:
        for x, y in _batches(loader, ctx.device, channels_last):
            with _autocast(spec, ctx.device):
                loss = compute_loss(spec.train.loss, forward(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if spec.train.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), spec.train.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            state["step"] += 1
            step = state["step"]
            last = step == spec.train.steps
            running_loss += loss.detach().float()
            running_count += 1
            log.step()
            if step % spec.train.log_every == 0 or last:  # reading the loss syncs the GPU: only at log steps
                mean_loss = float(running_loss) / running_count
                if not np.isfinite(mean_loss):
                    raise UserError(f"the training loss became {mean_loss} by step {step}; lower train.lr, "
                                    "set train.grad_clip, or check the data's normalization")
                log.train_loss(step, mean_loss, scheduler.get_last_lr()[0])
                running_loss.zero_()
                running_count = 0
            if ctx.is_main and (step % spec.train.val_every == 0 or last):
                metrics, predictions = validate(model, spec.train.loss, validation, step_size, ctx.device, per_rank)
                log.validation(step, metrics, input_nrmse)
                if metrics["loss"] < state["best"]:
                    state["best"] = metrics["loss"]
                    checkpoint(run.best)
            if ctx.is_main and (step % spec.train.checkpoint_every == 0 or last):
                checkpoint(run.last)
                first = validation.images[0]
                save_sample(run.samples / f"step_{step:07d}.png", first.source,
                            predict_whole(model, first.source, step_size, ctx.device), first.target,
                            f"{spec.name}, step {step}: {first.name}")
    except KeyboardInterrupt:
        if ctx.is_main and state["step"] > first_step:
            checkpoint(run.last)
        log.close()
        raise TrainingInterrupted(f"interrupted at step {state['step']}; {run.last} holds it, "
                                  f"continue with --resume") from None
    log.message(f"done: {state['step']} steps; checkpoints in {run.checkpoints}, curves in {run.curves}")
    log.close()
    return run
