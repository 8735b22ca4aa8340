"""The network as one Python file that needs only torch, for the package's pytorch_state_dict weights.

The file is assembled from gvtnet-zoo's own operator and model modules (the same source, not a
copy kept by hand) plus a small entry point, ``build_network(config)``, that takes the model section
of the resolved spec as a plain mapping.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..config import ProjectionGVTNetConfig
from ..models import gvtnet, heads, projection, sizes, unet
from ..nn import attention, blocks, gvto, layers

ENTRY_POINT = "build_network"
MODULES = (layers, blocks, attention, gvto, sizes, heads, gvtnet, unet, projection)  # definition order

_ENTRY = '''

class ModelConfig:
    """The model section of a gvtnet-zoo spec as attributes (every key explicit), with its size step."""

    def __init__(self, fields: dict) -> None:
        for key, value in fields.items():
            setattr(self, key, ModelConfig(value) if isinstance(value, dict) else value)

    def size_step(self) -> List[int]:
        return list(self.step)


_NETWORKS = {"gvtnet": GVTNet, "unet_fnet": UNetFnet, "unet_care": UNetCare, "gvtnet_projection": ProjectedGVTNet}


def build_network(config: dict) -> nn.Module:
    """The untrained network of a gvtnet-zoo spec's model section (as written in the package's rdf.yaml)."""
    cfg = ModelConfig(config)
    return _NETWORKS[cfg.architecture](cfg)
'''

_IMPORT = re.compile(r"^(from \S+ import .+|import \S+)$")


def architecture_source() -> str:
    """The standalone module's source text."""
    imports: list[str] = []
    bodies: list[str] = []
    for module in MODULES:
        body = []
        for line in Path(module.__file__).read_text().splitlines():
            if _IMPORT.match(line):
                if not line.startswith(("from .", "from __future__")) and line not in imports:
                    imports.append(line)
                continue
            body.append(line)
        bodies.append(f"# ---- from gvtnet_zoo/{Path(module.__file__).parent.name}/{Path(module.__file__).name}\n"
                      + "\n".join(body).strip() + "\n")
    header = ('"""GVTNets and U-Net baselines of gvtnet-zoo as one module that needs only PyTorch.\n\n'
              'Generated from gvtnet-zoo\'s sources; build a network with build_network(config), config being\n'
              'the kwargs in this package\'s rdf.yaml."""\n\nfrom __future__ import annotations\n\n')
    return header + "\n".join(sorted(imports)) + "\n\n\n" + "\n\n".join(bodies) + _ENTRY


def write_architecture(path: str | Path) -> Path:
    path = Path(path)
    path.write_text(architecture_source())
    return path


def network_kwargs(config: Any) -> dict[str, Any]:
    """The model section as plain data for ``build_network``, each (sub)network with its size step."""
    fields = config.model_dump(mode="json")
    fields["step"] = config.size_step()
    if isinstance(config, ProjectionGVTNetConfig):
        fields["network"] = network_kwargs(config.network)
    return fields
