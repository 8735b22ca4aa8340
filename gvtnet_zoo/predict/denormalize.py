"""``predict --denormalize``: outputs mapped back to the input's intensity units, as CSBDeep's
PercentileNormalizer.after and the original GVTNets' predict.py compute them: out * (p_high - p_low) + p_low,
with p_low / p_high the percentiles the package's ``scale_range`` preprocessing took of that image.

Only defined where the output is in the normalized units of the one input: one input normalized by
``scale_range`` with per-sample statistics and no postprocessing of its own. Everything else is refused in one
line (``denormalization``) before anything is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..errors import UserError
from .tensors import tensor_id

# preprocessing that may stand beside scale_range without changing what the output's units are
_NEUTRAL_PRE = {"ensure_dtype", "clip"}
# postprocessing that does not map the output anywhere (a cast); anything else already has its own units
_NEUTRAL_POST = {"ensure_dtype"}


def _proc_id(proc: Any) -> str:
    """A processing step's id (format 0.5) or name (format 0.4)."""
    return str(getattr(proc, "id", None) or getattr(proc, "name"))


@dataclass(frozen=True)
class Denormalization:
    """The two sample measures (bioimageio.core ``SampleQuantile``, method linear) whose values map an output back:
    the keys under which the pipeline stores them in ``sample.stat``, and from which streamed statistics are made."""

    input_id: str
    lower: Any
    upper: Any

    def bounds(self, stat: Mapping[Any, Any], raw: Optional[Mapping[str, Any]] = None) -> tuple[Any, Any]:
        """(p_low, p_high) of one sample: from ``stat`` (what the preprocessing used), else computed as
        bioimageio.core computes them on ``raw`` ({input id: Tensor}, the image as given, before any padding)."""
        if self.lower in stat and self.upper in stat:
            return stat[self.lower], stat[self.upper]
        if raw is None:
            raise UserError("--denormalize: the percentiles of the package's scale_range were not computed for this "
                            "image; predict it without --denormalize")
        from bioimageio.core.sample import Sample

        sample = Sample(members={k: v for k, v in raw.items()}, stat={}, id=None)
        return self.lower.compute(sample), self.upper.compute(sample)


def denormalization(descr: Any) -> Denormalization:
    """What maps the outputs of the package ``descr`` (format 0.4 or 0.5) back to its input's units; UserError
    naming the case where that is undefined."""
    from bioimageio.core.proc_ops import ScaleRange
    from bioimageio.core.stat_measures import SampleQuantile

    refuse = "--denormalize needs a package whose output is in the units its scale_range preprocessing makes of its one input"
    if len(descr.inputs) != 1:
        raise UserError(f"{refuse}; this one has {len(descr.inputs)} inputs, so whose units the output has is undefined")
    tensor = descr.inputs[0]
    steps = list(tensor.preprocessing or [])
    ranges = [p for p in steps if _proc_id(p) == "scale_range"]
    others = [_proc_id(p) for p in steps if _proc_id(p) != "scale_range" and _proc_id(p) not in _NEUTRAL_PRE]
    if not ranges:
        # ensure_dtype steps (the spec adds casts) are not what the user needs to hear about
        found = ", ".join(_proc_id(p) for p in steps if _proc_id(p) not in _NEUTRAL_PRE) or "none"
        raise UserError(f"{refuse}; this one has no scale_range preprocessing (it has: {found})")
    if len(ranges) > 1 or others:
        raise UserError(f"{refuse}; this one's preprocessing also has {', '.join(others) or 'a second scale_range'}, "
                        "so the output's units are not those of scale_range alone")
    op = ScaleRange.from_proc_descr(ranges[0], _member_id(tensor))
    if not isinstance(op.lower, SampleQuantile) or not isinstance(op.upper, SampleQuantile):
        raise UserError(f"{refuse}; this one's scale_range uses dataset statistics (axes include batch or are not "
                        "given), not the image's own percentiles")
    if str(op.lower.member_id) != tensor_id(tensor):
        raise UserError(f"{refuse}; this one's scale_range takes its percentiles from {op.lower.member_id}")
    for output in descr.outputs:
        post = [_proc_id(p) for p in (output.postprocessing or []) if _proc_id(p) not in _NEUTRAL_POST]
        if post:
            raise UserError(f"{refuse}; output {tensor_id(output)} already has postprocessing ({', '.join(post)}) "
                            "that maps it to its own units; predict without --denormalize")
    return Denormalization(tensor_id(tensor), op.lower, op.upper)


def _member_id(tensor: Any) -> Any:
    from bioimageio.core.digest_spec import get_member_id

    return get_member_id(tensor)


def broadcastable(value: Any, dims: Sequence[str], shape: Sequence[int]) -> np.ndarray:
    """A statistic (a number, or a bioimageio.core Tensor over the axes it was not reduced over, e.g. batch and
    channel) -> float64 array broadcastable to an array of ``shape`` with axes ``dims`` (axis ids)."""
    if not hasattr(value, "dims"):
        return np.asarray(float(value), np.float64)
    stat_dims = [str(d) for d in value.dims]
    data = np.asarray(value.data, np.float64)
    out_shape = []
    for name, size in zip(dims, shape):
        n = data.shape[stat_dims.index(name)] if name in stat_dims else 1
        if n not in (1, size):
            raise UserError(f"--denormalize: the input has {n} percentiles along {name} (one per {name}) but the output "
                            f"has {size}; which maps to which is undefined, predict without --denormalize")
        out_shape.append(n)
    extra = [k for k, d in enumerate(stat_dims) if d not in dims]
    if any(data.shape[k] > 1 for k in extra):
        axis = stat_dims[next(k for k in extra if data.shape[k] > 1)]
        raise UserError(f"--denormalize: the input's percentiles differ along {axis}, an axis the output does not "
                        "have; predict without --denormalize")
    data = data.reshape([s for k, s in enumerate(data.shape) if k not in extra])
    kept = [d for d in stat_dims if d in dims]
    data = np.transpose(data, [kept.index(d) for d in dims if d in kept])  # into the output's axis order
    return data.reshape(out_shape)


def denormalize_array(array: np.ndarray, dims: Sequence[str], low: Any, high: Any) -> np.ndarray:
    """out * (p_high - p_low) + p_low for an output ``array`` with axes ``dims`` (axis ids, e.g. batch, channel, y, x);
    float64 arithmetic, float32 result. No eps: the original (and CSBDeep) scale back by p_high - p_low."""
    lo = broadcastable(low, dims, array.shape)
    hi = broadcastable(high, dims, array.shape)
    return (array.astype(np.float64) * (hi - lo) + lo).astype(np.float32)


def denormalize_sample(d: Denormalization, result: Any, stat: Mapping[Any, Any],
                       raw: Optional[Mapping[str, Any]] = None) -> None:
    """Map every output member of the bioimageio.core sample ``result`` back in place (``Denormalization.bounds``)."""
    from bioimageio.core import Tensor

    low, high = d.bounds(stat, raw)
    for key, tensor in list(result.members.items()):
        dims = [str(a) for a in tensor.dims]
        mapped = denormalize_array(tensor.data.to_numpy(), dims, low, high)
        result.members[key] = Tensor.from_numpy(mapped, dims=tensor.dims)
