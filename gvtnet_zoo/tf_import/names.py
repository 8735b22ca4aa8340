"""Where each weight of a gvtnet-zoo GVTNet lives in the original code's TF1 graph.

The original names its variables by ``tf.variable_scope``: ``first_convolution``, ``encoding_block_{i}``
(``downsampling``, ``res_{j}``), ``bottom_block/block_{j}``, ``decoding_block_{j}`` (``upsampling``,
``res_{j}``), the head (``batch_norm_output``, ``out_conv`` or ``output_convolution``), the scale head
``out_sigma_conv``, and the projection net under ``projection/``. ``tf_variable_map`` walks a built
model and returns, for every state-dict entry, the TF variable it comes from.
"""

from __future__ import annotations

from typing import Iterator

from torch import nn

from ..models.gvtnet import GVTNet
from ..models.projection import ProjectedGVTNet, ProjectionNet
from ..nn import DownResidualBlock, ResamplingGVTO, ResidualBlock, SameGVTO
from ..nn.attention import GlobalAttention

_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
Pairs = Iterator[tuple[str, str]]


def _conv(torch_name: str, tf_scope: str, layer: nn.Module) -> Pairs:
    yield f"{torch_name}.weight", f"{tf_scope}/kernel"
    if getattr(layer, "bias", None) is not None:
        yield f"{torch_name}.bias", f"{tf_scope}/bias"


def _norm(torch_name: str, tf_scope: str, pre: nn.Module) -> Pairs:
    """A PreActivation's batch norm (its first layer), if it has one."""
    if isinstance(pre[0], nn.modules.batchnorm._BatchNorm):
        for ours, theirs in _BN.items():
            yield f"{torch_name}.0.{ours}", f"{tf_scope}/{theirs}"


def _attention(torch_name: str, tf_scope: str, attention: GlobalAttention) -> Pairs:
    for ours, theirs in (("query", "q"), ("key", "k"), ("value", "v"), ("output", "out")):
        layer = getattr(attention, ours)
        if any(True for _ in layer.parameters()):  # the up4 query has no weights
            yield from _conv(f"{torch_name}.{ours}", f"{tf_scope}/{theirs}_transform", layer)


def _operator(torch_name: str, tf_scope: str, module: nn.Module) -> Pairs:
    """Any block of the GVTNet at ``tf_scope`` (the block's own scope)."""
    if isinstance(module, ResidualBlock):
        yield from _norm(f"{torch_name}.pre", f"{tf_scope}/batch_norm_1", module.pre)
        if module.project_input:
            yield from _conv(f"{torch_name}.shortcut", f"{tf_scope}/projection_shortcut", module.shortcut)
        yield from _conv(f"{torch_name}.conv1", f"{tf_scope}/convolution_1", module.conv1)
        yield from _norm(f"{torch_name}.pre2", f"{tf_scope}/batch_norm_2", module.pre2)
        yield from _conv(f"{torch_name}.conv2", f"{tf_scope}/convolution_2", module.conv2)
    elif isinstance(module, DownResidualBlock):
        yield from _norm(f"{torch_name}.pre", f"{tf_scope}/batch_norm_1", module.pre)
        yield from _conv(f"{torch_name}.shortcut", f"{tf_scope}/projection_shortcut", module.shortcut)
        yield from _conv(f"{torch_name}.conv1", f"{tf_scope}/convolution_1", module.conv1)
        yield from _norm(f"{torch_name}.pre2", f"{tf_scope}/batch_norm_2", module.pre2)
        yield from _conv(f"{torch_name}.conv2", f"{tf_scope}/convolution_2", module.conv2)
    elif isinstance(module, (SameGVTO, ResamplingGVTO)):
        yield from _norm(f"{torch_name}.pre", f"{tf_scope}/batch_norm", module.pre)
        yield from _attention(f"{torch_name}.attention", f"{tf_scope}/attention", module.attention)
        if isinstance(module, ResamplingGVTO) and not module.use_query_residual:
            yield from _conv(f"{torch_name}.shortcut", f"{tf_scope}/projection_shortcut", module.shortcut)
    elif isinstance(module, (nn.Conv2d, nn.Conv3d)):  # plain strided down-sampling
        yield from _conv(torch_name, f"{tf_scope}/convolution", module)
    elif isinstance(module, (nn.ConvTranspose2d, nn.ConvTranspose3d)):  # plain up-sampling
        yield from _conv(torch_name, f"{tf_scope}/transposed_convolution", module)
    else:
        raise ValueError(f"no TF counterpart for {type(module).__name__} at {torch_name}")


def _gvtnet(net: GVTNet, prefix: str) -> Pairs:
    depth = len(net.encoder)
    yield from _conv(f"{prefix}stem", "first_convolution", net.stem)
    for i, level in enumerate(net.encoder):
        scope = f"encoding_block_{i + 1}"
        if i > 0:
            yield from _operator(f"{prefix}encoder.{i}.down", f"{scope}/downsampling", level.down)
        for j, block in enumerate(level.blocks):
            yield from _operator(f"{prefix}encoder.{i}.blocks.{j}", f"{scope}/res_{j}", block)
    for j, block in enumerate(net.bottom):
        yield from _operator(f"{prefix}bottom.{j}", f"bottom_block/block_{j}", block)
    for k, level in enumerate(net.decoder):
        scope = f"decoding_block_{depth - 1 - k}"
        yield from _operator(f"{prefix}decoder.{k}.up", f"{scope}/upsampling", level.up)
        for j, block in enumerate(level.blocks):
            yield from _operator(f"{prefix}decoder.{k}.blocks.{j}", f"{scope}/res_{j}", block)
    yield from _norm(f"{prefix}head_pre", "batch_norm_output", net.head_pre)
    head_kernel = net.head.kernel_size[0]
    yield from _conv(f"{prefix}head", "out_conv" if head_kernel == 1 else "output_convolution", net.head)
    if net.sigma_head is not None:
        yield from _conv(f"{prefix}sigma_head", "out_sigma_conv", net.sigma_head)


def _projection(net: ProjectionNet, prefix: str) -> Pairs:
    stages = len(net.encoder)
    for n, stage in enumerate(net.encoder):
        layer = stage[0] if n == 0 else stage[0][1]  # [act ->] conv, then the max-pool
        yield from _conv(f"{prefix}encoder.{n}.{'0' if n == 0 else '0.1'}", f"projection/Conv_down_{n}", layer)
    yield from _operator(f"{prefix}bottom_gvto", "projection/Bottom_0", net.bottom_gvto)
    yield from _conv(f"{prefix}bottom_conv.1", "projection/Conv_bottom_0", net.bottom_conv[1])
    for k, stage in enumerate(net.decoder):  # the original builds its up-sampling stages from the last index down
        n = stages - 1 - k
        yield from _operator(f"{prefix}decoder.{k}.0", f"projection/Upsample_{n}", stage[0])
        yield from _conv(f"{prefix}decoder.{k}.1.1", f"projection/Conv_up_{n}", stage[1][1])
    yield from _conv(f"{prefix}head.1", "projection/Conv_final", net.head[1])


def tf_variable_map(model: nn.Module) -> dict[str, str]:
    """State-dict key -> TF variable name, for every parameter and batch-norm statistic of ``model``.

    ``model`` is a GVTNet or a projection GVTNet (the paper's three tasks); U-Nets have no TF original here.
    """
    if isinstance(model, GVTNet):
        pairs = dict(_gvtnet(model, ""))
    elif isinstance(model, ProjectedGVTNet):
        pairs = {**dict(_projection(model.projection, "projection.")), **dict(_gvtnet(model.network, "network."))}
    else:
        raise ValueError(f"the original GVTNets code has no {type(model).__name__}; import-tf takes GVTNet specs")
    state = model.state_dict()
    unmapped = [k for k in state if k not in pairs and not k.endswith("num_batches_tracked")]
    if unmapped or any(k not in state for k in pairs):
        raise AssertionError(f"the TF name map misses {unmapped} or names {[k for k in pairs if k not in state]}")
    return pairs
