"""How far an image's GVTO contexts lie from those the package recorded at package time (``predict --context-report``).

Each GVTO's only global state is, per head, K^T V / N (nn/attention.py): the image's "context". At package
time, ``context_record`` measures it on patches of the training patch size cut from the run's held-out
sample image (the one image a run folder keeps) and stores, per GVTO, the patches' mean and how far single
patches lie from it (relative Frobenius distance: mean and 95th percentile), in config.gvtnet_zoo.context.
``context_report`` computes the same for a whole input image and says per GVTO how far it lies from that
mean and whether it is beyond the patches' 95th percentile. It reads the images itself and changes no
prediction. docs/results.md ("Global context on new images") says what such a distance does and does not
predict: there it flagged the volumes the context harmed, but the harmed test volume lay inside the spread of
patches from both training volumes, so a distance says "unlike the recorded image", no more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..config import Spec
from ..data.normalization import normalize_input
from ..errors import UserError
from ..nn.attention import GlobalAttention
from .sizes import ORIGINAL_BORDER

PATCHES = 32  # patches measured at package time: their spread is what an image is compared with
DIGITS = 4  # significant digits stored: the record is a yardstick, not weights


def gvto_contexts(network: nn.Module, spec: Spec, batch: np.ndarray) -> list[torch.Tensor]:
    """Per GVTO (forward order), each image's own K^T V / N: (B, heads, d, d), for a normalized batch (B, C, *S)
    whose space axes are multiples of the network's step."""
    found: list[torch.Tensor] = []

    def hook(module: GlobalAttention, inputs: tuple, output: tuple) -> None:
        x, query = inputs[0], output[1]
        found.append(module.key_value_context(module.key(x), module.value(x)) / query[0, 0].numel())

    attentions = [m for m in network.modules() if isinstance(m, GlobalAttention)]
    handles = [m.register_forward_hook(hook) for m in attentions]
    try:
        with torch.no_grad():
            network(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
    finally:
        for handle in handles:
            handle.remove()
    return found


def _valid(image: np.ndarray, step: Sequence[int]) -> np.ndarray:
    """(C, *S) padded up to multiples of ``step`` on the space axes as gvtnet-zoo packages are predicted
    (sizes.ORIGINAL_BORDER: the original's reflect, half before the image), so the context is the prediction's."""
    pad = [(0, 0)] + [ORIGINAL_BORDER.split(n, n + -n % s) for n, s in zip(image.shape[1:], step)]
    return np.pad(image, pad, mode=ORIGINAL_BORDER.mode) if any(sum(p) for p in pad) else image


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def context_record(network: nn.Module, spec: Spec, image: np.ndarray, source: str, seed: int = 0) -> Optional[dict]:
    """config.gvtnet_zoo.context for a GVTNet (None for networks without GVTOs): per GVTO the mean K^T V / N over
    ``PATCHES`` random patches (the spec's patch size, at most the image) of the raw ``image`` (*S or (C, *S)),
    normalized as the package's preprocessing does, and the patches' relative distance from it (mean, 95th pct)."""
    if not any(isinstance(m, GlobalAttention) for m in network.modules()):
        return None
    x = normalize_input(np.asarray(image, dtype=np.float32), spec.data)
    x = x if x.ndim == spec.model.input_dims + 1 else x[None]
    step = spec.model.size_step()
    size = [max(s, min(p, n) // s * s) for p, n, s in zip(spec.data.patch_size, x.shape[1:], step)]
    x = _valid(x, step)
    rng = np.random.default_rng(seed)
    starts = [[int(rng.integers(0, n - p + 1)) for n, p in zip(x.shape[1:], size)] for _ in range(PATCHES)]
    batch = np.stack([x[(slice(None), *[slice(a, a + p) for a, p in zip(start, size)])] for start in starts])
    gvtos = []
    for kv in (torch.cat(parts) for parts in zip(*[gvto_contexts(network, spec, batch[k:k + 8])
                                                  for k in range(0, PATCHES, 8)])):
        mean = kv.mean(0)
        distances = np.array([_relative(one, mean) for one in kv])
        gvtos.append({"mean": _rounded(mean),
                      "spread": float(f"{distances.mean():.{DIGITS}g}"),
                      "p95": float(f"{np.percentile(distances, 95):.{DIGITS}g}")})
    return {"source": source, "patch_size": size, "patches": PATCHES, "gvtos": gvtos}


def _rounded(tensor: torch.Tensor) -> list:
    """Nested lists of floats at ``DIGITS`` significant digits (an rdf.yaml stays readable and small)."""
    return np.vectorize(lambda v: float(f"{v:.{DIGITS}g}"), otypes=[float])(tensor.double().numpy()).tolist()


NO_RECORD = ("context report: this package has no recorded context (made before gvtnet-zoo recorded it, or "
             "imported with import-tf, whose training data are not here); nothing to compare")


def report_lines(record: dict, network: nn.Module, spec: Spec, image: np.ndarray, name: str) -> list[str]:
    """Per GVTO: the whole image's context distance from the recorded mean, against the recorded spread."""
    x = normalize_input(np.asarray(image, dtype=np.float32), spec.data)
    x = x if x.ndim == spec.model.input_dims + 1 else x[None]
    if x.ndim != spec.model.input_dims + 1:
        raise UserError(f"{name}: --context-report needs a {spec.model.input_dims}D image, got shape {image.shape}")
    own = gvto_contexts(network, spec, _valid(x, spec.model.size_step())[None])
    if len(own) != len(record["gvtos"]):
        raise UserError(f"{name}: the package records {len(record['gvtos'])} GVTO contexts but its network has "
                        f"{len(own)}; the package is damaged")
    lines = [f"{name}: context report (K^T V / N per GVTO against {record['patches']} patches of "
             f"{' x '.join(map(str, record['patch_size']))} from {record['source']})"]
    for index, (kv, stats) in enumerate(zip(own, record["gvtos"])):
        mean = torch.tensor(stats["mean"], dtype=kv.dtype)
        distance = _relative(kv[0], mean)
        verdict = "OUTSIDE the recorded spread" if distance > stats["p95"] else "within the recorded spread"
        lines.append(f"  GVTO {index + 1}: distance {distance:.2f} from the recorded mean (patches: mean "
                     f"{stats['spread']:.2f}, 95th percentile {stats['p95']:.2f}): {verdict}")
    return lines


def report_files(model_source: str | Path, inputs: Sequence[str | Path], echo: Callable[[str], None] = print) -> None:
    """``predict --context-report``: one report per input image (files or folders), before predicting them."""
    from ..image_io.files import collect_inputs, is_zarr
    from ..image_io.images import read_image
    from ..trust import read_description
    from .global_context import context_network_from_package

    descr = read_description(model_source)
    config: Any = getattr(getattr(descr, "config", None), "gvtnet_zoo", None)
    if not isinstance(config, dict) or "spec" not in config:
        echo("context report: not a gvtnet-zoo package (no config.gvtnet_zoo); nothing to compare")
        return
    spec = Spec.model_validate(config["spec"])
    if spec.model.architecture not in ("gvtnet", "gvtnet_projection"):
        echo(f"context report: {spec.name} ({spec.model.architecture}) has no GVTOs, so no global context")
        return
    if not config.get("context"):
        echo(NO_RECORD)
        return
    network = context_network_from_package(descr, "cpu").network
    for path in collect_inputs(inputs):
        if is_zarr(path):
            echo(f"{Path(path).name}: context report: skipped (it reads images into memory; Zarr stores are streamed)")
            continue
        for line in report_lines(config["context"], network, spec, read_image(path), Path(path).name):
            echo(line)
