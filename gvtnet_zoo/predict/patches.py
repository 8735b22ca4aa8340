"""``--patches``: the original GVTNets' cropped prediction (``predict.py --cropped_prediction``), in memory.

The paper's CARE numbers were predicted this way (patches 128 x 256 x 256, overlap 64). A GVTNet's attention
sees its whole input, so cutting patches changes the result; this mode reproduces the original's cut exactly
rather than the whole image's result (``--global-context`` gives that). The rule, per image:

1. the package's preprocessing runs on the whole image as given (the original normalizes before cutting, so
   percentiles and means are those of the whole image, never of a patch or of padding);
2. the image is padded once to a valid size as ``--whole`` pads it (``sizes.pad_to_valid``, its border as
   ``sizes.border_of`` says for the package): the original's PadAndCropResizer pads the whole image to the
   step, never a patch;
3. per cut axis, the patch length is the wanted length rounded UP to a valid size of the package's
   ``ParameterizedSize`` (the smallest ``min + n * step`` >= it: the original's ``ceil(p / step) * step``
   where ``min`` is a multiple of ``step``, never below ``min``), then shortened to the padded image's length
   where it is longer (one patch spanning the image: a patch is never padded on its own);
4. along an axis of padded length S with patch length P and overlap O (input voxels, not rounded): one start
   at 0 if P == S; otherwise ``n = ceil((S - P) / (P - O))`` starts at ``0, P - O, ..., (n - 1) (P - O)`` and a
   last one at ``S - P``, flush with the end of the padded image (so the last two overlap by O or more);
   patches are the product of the axes' starts, and each runs through the package's network on its own;
5. where patches overlap, their raw network outputs are averaged (sum / count, in float64), then the package's
   postprocessing runs once on the whole output and the padding is cropped off, as in the other modes.

Axes: the input's space axes that the outputs keep are cut (axes not named in ``--patches`` stay whole);
an axis the outputs drop (a projection model's z) is never cut, as the original asserts for its
projection network. Where the original differs, on purpose: for 2D images its y patch end uses the x
patch length (a slip that only works for square patches); here each axis uses its own length. Overlaps of
at least the rounded patch length, which the original cannot handle, are refused.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UserError
from ..progress import Progress, no_progress
from .network_call import run_network
from .sizes import border_of, crop_outputs, input_axis_of, pad_to_valid, valid_size


@dataclass(frozen=True)
class PatchRule:
    """Patch length (a valid size, before shortening to the image) and overlap per cut input axis id."""

    patch: dict[str, int]
    overlap: dict[str, int]


def patch_starts(size: int, patch: int, overlap: int) -> list[int]:
    """Starts along an axis of (padded) ``size`` for patches of ``patch`` voxels (already at most ``size``):
    one every ``patch - overlap``, the last one flush with the end. ``overlap < patch`` unless one patch fits."""
    if patch >= size:
        return [0]
    stride = patch - overlap
    count = math.ceil((size - patch) / stride)
    return [i * stride for i in range(count)] + [size - patch]


def _cut_axes(descr: Any) -> dict[str, Any]:
    """The first input's space axes that some output keeps, by id (the axes patches may cut)."""
    tensor = descr.inputs[0]
    kept = {source[0] for output in descr.outputs for axis in output.axes
            if (source := input_axis_of(axis, tensor)) is not None}
    return {str(a.id): a for a in tensor.axes if a.type == "space" and str(a.id) in kept}


def patch_rule(descr: Any, patches: dict[str, int], overlap: dict[str, int]) -> PatchRule:
    """Check that ``descr`` can be predicted in patches and round ``patches`` (axis id -> wanted length) up to
    valid sizes; ``overlap``: axis id -> voxels. Refuses, in one line, what the rule cannot do."""
    from bioimageio.spec.model import v0_5

    if not isinstance(descr, v0_5.ModelDescr):
        raise UserError("--patches needs a format 0.5 model; predict this one --whole")
    if len(descr.inputs) != 1:
        raise UserError("--patches takes models with one input; predict this one with --tile or --whole")
    tensor = descr.inputs[0]
    space = [str(a.id) for a in tensor.axes if a.type == "space"]
    unknown = sorted(set(patches) - set(space))
    if unknown:
        raise UserError(f"--patches names axis {unknown[0]}, which the model's input ({','.join(space)}) does not "
                        f"have; give {','.join(a.upper() for a in space)}")
    for output in descr.outputs:
        for axis in output.axes:
            source = input_axis_of(axis, tensor)
            if source is not None and (source[1] != 1 or source[2] != 0):
                raise UserError(f"--patches needs outputs on the input's grid, but output {output.id} is resampled "
                                f"or offset along {axis.id}; predict it with --tile")
    cut = _cut_axes(descr)
    rounded, overlaps = {}, {}
    for name, wanted in patches.items():
        axis = cut.get(name)
        if axis is None:
            continue  # dropped by the outputs (a projection's z): always whole, as in the original
        if not isinstance(axis.size, v0_5.ParameterizedSize):
            raise UserError(f"--patches needs an input of parameterized size; the model's {name} is fixed at "
                            f"{axis.size}: predict it with --tile")
        rounded[name] = valid_size(axis, wanted, border_of(descr).step_only)  # the original: up to its step
        overlaps[name] = overlap.get(name, 0)
        if overlaps[name] >= rounded[name]:
            raise UserError(f"--overlap along {name} ({overlaps[name]}) must be smaller than the patch "
                            f"({rounded[name]} after rounding up to the model's step {axis.size.step})")
    return PatchRule(rounded, overlaps)


def predict_patches(pipeline: Any, descr: Any, sample: Any, rule: PatchRule, weights: str,
                    progress: Progress = no_progress) -> Any:
    """Predict an unpadded single-input ``sample`` patch by patch as the module docstring says -> the
    postprocessed output sample, cropped to the image (outputs (b, c, [z,] y, x) like the package's)."""
    from bioimageio.core import Tensor
    from bioimageio.core.sample import Sample
    from bioimageio.spec.model import v0_5

    tensor = descr.inputs[0]
    pipeline.apply_preprocessing(sample)  # statistics of the whole image as given
    original = pad_to_valid(descr, sample)
    padded = {str(a): int(n) for a, n in sample.members[tensor.id].sizes.items()}
    lengths = {a: min(p, padded[a]) for a, p in rule.patch.items()}
    starts = {a: patch_starts(padded[a], lengths[a], rule.overlap[a]) for a in lengths}
    names = list(starts)
    # patches form a grid, so the number covering a voxel is the product of per-axis counts
    counts = {a: np.zeros(padded[a], np.float64) for a in names}
    for a in names:
        for s in starts[a]:
            counts[a][s:s + lengths[a]] += 1
    dims = {str(o.id): [a.id for a in o.axes] for o in descr.outputs}
    sources = {str(o.id): [(source[0] if (source := input_axis_of(a, tensor)) else None) for a in o.axes]
               for o in descr.outputs}
    sums: dict[str, np.ndarray] = {}
    grid = list(itertools.product(*(starts[a] for a in names)))
    for done, corner in enumerate(grid):
        progress(done, len(grid))
        region = {v0_5.AxisId(a): slice(s, s + lengths[a]) for a, s in zip(names, corner)}
        patch = Sample(members={tensor.id: sample.members[tensor.id][region]}, stat=sample.stat, id=sample.id)
        out = run_network(pipeline, patch, weights)
        where = dict(zip(names, corner))
        for output_id, axis_ids in dims.items():
            data = out.members[v0_5.TensorId(output_id)].transpose(axis_ids).data.to_numpy()
            if output_id not in sums:
                shape = [padded[a] if a else n for a, n in zip(sources[output_id], data.shape)]
                sums[output_id] = np.zeros(shape, np.float64)
            place = tuple(slice(where[a], where[a] + lengths[a]) if a in where else slice(None)
                          for a in sources[output_id])
            sums[output_id][place] += data
    progress(len(grid), len(grid))
    members = {}
    for output_id, total in sums.items():
        count = np.ones([1] * total.ndim)
        for k, a in enumerate(sources[output_id]):
            if a in counts:
                count = count * counts[a].reshape([-1 if j == k else 1 for j in range(total.ndim)])
        members[v0_5.TensorId(output_id)] = Tensor.from_numpy((total / count).astype(np.float32),
                                                               dims=dims[output_id])
    result = Sample(members=members, stat=sample.stat, id=sample.id)
    pipeline.apply_postprocessing(result)
    return crop_outputs(descr, result, original)
