"""The run folder: what lives where, and the rules for starting, resuming or overwriting a run."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Spec
from ..errors import UserError
from ..spec_loading import load_spec


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "spec.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def curves(self) -> Path:
        return self.root / "train_curves.png"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def validation_sample(self) -> tuple[Path, Path]:
        """A held-out (input, target) pair, raw, kept for the package's test tensors and cover."""
        return self.root / "validation_sample" / "input.tif", self.root / "validation_sample" / "target.tif"

    def holds_run(self) -> bool:
        return self.spec.exists() or self.last.exists()

    def clear(self) -> None:
        """Remove what a run writes (and nothing else the user may keep in the folder)."""
        for path in (self.checkpoints, self.tensorboard, self.samples, self.validation_sample[0].parent):
            shutil.rmtree(path, ignore_errors=True)
        for path in (self.spec, self.metrics, self.curves):
            path.unlink(missing_ok=True)


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# What may change when a run is continued: its length and how it is watched, not what it learns.
RESUMABLE_CHANGES = ("train.steps", "train.val_every", "train.checkpoint_every", "train.log_every",
                     "train.val_max_images", "data.workers")


def spec_for_resume(run: RunDir, requested: Spec) -> Spec:
    """The run's own spec, with the changes a resumed run may make taken from ``requested``."""
    recorded = load_spec(run.spec)
    old = _flatten(recorded.model_dump(mode="json", exclude={"provenance"}))
    new = _flatten(requested.model_dump(mode="json", exclude={"provenance"}))
    differing = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if differing:
        raise UserError(f"the spec differs from the one {run.root} was trained with ({', '.join(differing)}); "
                        f"resume with {run.spec}, or start a new run in another folder")
    changes = {k: new[k] for k in RESUMABLE_CHANGES}
    merged = recorded.model_dump(mode="json")
    for key, value in changes.items():
        section, name = key.split(".")
        merged[section][name] = value
    return Spec.model_validate(merged)


def check_run_dir(run: RunDir, resume: bool, overwrite: bool) -> None:
    """Refuse to touch an existing run unless asked to resume or overwrite it."""
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other; choose one")
    if resume:
        if not run.last.exists() or not run.spec.exists():
            raise UserError(f"nothing to resume in {run.root} (no spec.yaml and checkpoints/last.pt); drop --resume")
    elif run.holds_run() and not overwrite:
        raise UserError(f"{run.root} already holds a run; add --resume to continue it or --overwrite to start over")
