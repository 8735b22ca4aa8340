"""gvtnet-zoo: GVTNets and U-Net baselines for augmented microscopy, packaged for the BioImage Model Zoo."""

from .config import Spec
from .models import build_model, count_parameters
from .spec_loading import load_spec

__version__ = "0.1.0"
__all__ = ["Spec", "build_model", "count_parameters", "load_spec", "__version__"]
