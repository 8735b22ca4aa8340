"""The CARE / GVTNets evaluation protocol (DESIGN.md §5), per image.

The ground truth g is normalized by its 0.1 / 99.9 percentiles (no clipping); the prediction x and
g are mean-subtracted and x is scaled by the least-squares alpha = cov(x, g) / var(x), so NRMSE
does not depend on the prediction's offset and scale. Pearson r uses the raw arrays. A volume with
fewer z planes than SSIM's window is scored by SSIM per 2D plane (``ssim_window`` says which).
Arrays with NaN or Inf, or a flat ground truth, raise ValueError: their metrics would mean nothing.
"""

from __future__ import annotations

import numpy as np

GT_PERCENTILES = (0.1, 99.9)


def normalize_ground_truth(g: np.ndarray) -> np.ndarray:
    """(g - p0.1) / (p99.9 - p0.1), float64, unclipped."""
    g = np.asarray(g, dtype=np.float64)
    low, high = np.percentile(g, GT_PERCENTILES)
    if not high > low:
        raise ValueError("the ground truth is flat: its 0.1 and 99.9 percentiles are equal")
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


SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03


def psnr(x: np.ndarray, g: np.ndarray) -> float:
    """PSNR with data range 1 of the scaled prediction against the normalized ground truth."""
    xs, gs = scaled_pair(x, g)
    return float(10 * np.log10(1.0 / np.mean((gs - xs) ** 2)))


def ssim_window(shape: tuple[int, ...]) -> str:
    """How ``ssim`` scores an image of ``shape``: '7x7x7', '7x7', or '7x7 per z plane' for thin volumes."""
    if min(shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"an image of {shape} is smaller than SSIM's {SSIM_WINDOW}-pixel window in y or x")
    if len(shape) == 3 and shape[0] < SSIM_WINDOW:
        return f"{SSIM_WINDOW}x{SSIM_WINDOW} per z plane"
    return "x".join([str(SSIM_WINDOW)] * len(shape))


def ssim(x: np.ndarray, g: np.ndarray) -> float:
    """SSIM (data range 1, 7-voxel uniform window, sample covariance) on the whole 2D or 3D image.

    The same definition as scikit-image's structural_similarity with its defaults, which CARE used;
    the mean is over voxels at least 3 from the border. A volume thinner than the window in z gets
    the mean of its planes' 2D SSIMs (the prediction scaled over the whole volume).
    """
    xs, gs = scaled_pair(x, g)
    if "per z plane" in ssim_window(xs.shape):
        return float(np.mean([_mean_ssim(xs[i], gs[i]) for i in range(xs.shape[0])]))
    return _mean_ssim(xs, gs)


def _mean_ssim(xs: np.ndarray, gs: np.ndarray) -> float:
    from scipy.ndimage import uniform_filter

    n = SSIM_WINDOW**xs.ndim
    cov_norm = n / (n - 1)
    mean = lambda a: uniform_filter(a, size=SSIM_WINDOW)  # noqa: E731
    ux, ug = mean(xs), mean(gs)
    vx = cov_norm * (mean(xs * xs) - ux * ux)
    vg = cov_norm * (mean(gs * gs) - ug * ug)
    vxg = cov_norm * (mean(xs * gs) - ux * ug)
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
    s = ((2 * ux * ug + c1) * (2 * vxg + c2)) / ((ux**2 + ug**2 + c1) * (vx + vg + c2))
    pad = (SSIM_WINDOW - 1) // 2
    return float(s[tuple(slice(pad, -pad) for _ in range(s.ndim))].mean())


METRICS = {"pearson_r": pearson_r, "nrmse": nrmse, "psnr": psnr, "ssim": ssim}
HIGHER_IS_BETTER = {"pearson_r": True, "nrmse": False, "psnr": True, "ssim": True}


class NonFinite(ValueError):
    """An array with NaN or Inf; ``role`` says which ('prediction' or 'ground truth')."""

    def __init__(self, role: str, bad: int, size: int) -> None:
        super().__init__(f"the {role} has {bad:,} NaN or Inf value(s) of {size:,}")
        self.role = role


def check_finite(array: np.ndarray, role: str) -> None:
    """NonFinite naming ``role`` when ``array`` holds NaN or Inf."""
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise NonFinite(role, bad, int(np.size(array)))


def scores(x: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """All protocol metrics of one prediction ``x`` against its ground truth ``g`` (same shape)."""
    check_finite(x, "prediction")
    check_finite(g, "ground truth")
    return {name: metric(x, g) for name, metric in METRICS.items()}
