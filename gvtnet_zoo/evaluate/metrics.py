"""The CARE / GVTNets evaluation protocol (DESIGN.md §5), per image.

The ground truth g is normalized by its 0.1 / 99.9 percentiles (no clipping); the prediction x and
g are mean-subtracted and x is scaled by the least-squares alpha = cov(x, g) / var(x), so NRMSE
does not depend on the prediction's offset and scale. Pearson r uses the raw arrays.
"""

from __future__ import annotations

import numpy as np

GT_PERCENTILES = (0.1, 99.9)


def normalize_ground_truth(g: np.ndarray) -> np.ndarray:
    """(g - p0.1) / (p99.9 - p0.1), float64, unclipped."""
    g = np.asarray(g, dtype=np.float64)
    low, high = np.percentile(g, GT_PERCENTILES)
    return (g - low) / (high - low)


def scaled_pair(x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(alpha * (x - mean x), g_n - mean g_n) with g_n the normalized ground truth; same shapes as the inputs."""
    g = normalize_ground_truth(g)
    g = g - g.mean()
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    variance = float(np.mean(x * x))
    alpha = float(np.mean(x * g)) / variance if variance > 0 else 0.0
    return alpha * x, g


def nrmse(x: np.ndarray, g: np.ndarray) -> float:
    """sqrt(mean((g_n - alpha x)^2)) after the protocol's normalization and scaling."""
    xs, gs = scaled_pair(x, g)
    return float(np.sqrt(np.mean((gs - xs) ** 2)))


def pearson_r(x: np.ndarray, g: np.ndarray) -> float:
    """Pearson correlation of the raw arrays (0 where either is constant)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    g = np.asarray(g, dtype=np.float64).ravel()
    x, g = x - x.mean(), g - g.mean()
    denominator = np.sqrt(np.sum(x * x) * np.sum(g * g))
    return float(np.sum(x * g) / denominator) if denominator > 0 else 0.0
