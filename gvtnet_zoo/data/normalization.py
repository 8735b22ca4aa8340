"""Per-image normalization, exactly as a bioimage.io package declares it as preprocessing.

percentile: (x - p_low) / (p_high - p_low + eps), the zoo's ``scale_range`` per sample;
zscore:     (x - mean) / (std + eps), the zoo's ``zero_mean_unit_variance`` per sample.

CSBDeep .npz patches (``as_stored``) were normalized by CSBDeep before they were saved: training
uses them as they are, and a whole input image gets the percentile normalization the package
declares (``input_percentiles``).
"""

from __future__ import annotations

import numpy as np

from ..config import CARE_PREDICTION_PERCENTILES, DataConfig, Spec

EPS = 1e-6  # bioimage.io's default eps for both operators


def normalize(image: np.ndarray, method: str, percentiles: tuple[float, float]) -> np.ndarray:
    """Normalize one whole image (any shape) -> float32 of the same shape; a LazyImage stays lazy."""
    from .lazy import LazyImage

    if isinstance(image, LazyImage):
        return image.normalized(method, percentiles)
    image = image.astype(np.float32, copy=False)
    if method == "percentile":
        low, high = np.percentile(image, percentiles)
        return ((image - low) / (high - low + EPS)).astype(np.float32)
    if method == "zscore":
        return ((image - image.mean()) / (image.std() + EPS)).astype(np.float32)
    raise ValueError(f"unknown normalization {method!r}")


def whole_image_method(data: DataConfig) -> str:
    """How a whole raw image is normalized: CSBDeep patches' packages take percentiles of the whole image."""
    return "percentile" if data.normalization == "as_stored" else data.normalization


def normalize_input(image: np.ndarray, data: DataConfig) -> np.ndarray:
    """A whole raw image as the network sees it: what the package's preprocessing does."""
    return normalize(image, whole_image_method(data), data.input_percentiles)


def normalize_target(image: np.ndarray, data: DataConfig) -> np.ndarray:
    """A whole raw training target; predictions come out on this scale."""
    return normalize(image, whole_image_method(data), data.target_percentiles)


def trained_on_csbdeep_patches(spec: Spec) -> Spec:
    """The spec of a network trained on CSBDeep patches: ``as_stored``, whole inputs at CARE's percentiles
    (unless the spec sets ``input_percentiles``)."""
    update: dict[str, object] = {"normalization": "as_stored"}
    if "input_percentiles" not in spec.data.model_fields_set:
        update["input_percentiles"] = CARE_PREDICTION_PERCENTILES
    return spec.model_copy(update={"data": spec.data.model_copy(update=update)})
