"""``gvtnet-zoo evaluate``: per-image CARE-protocol metrics, means, and a paired comparison with a baseline."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..atomic import atomic_path, refuse_to_replace
from ..errors import UserError
from ..figures import pyplot, save_figure
from ..image_io.images import image_stem, is_image_file, read_image
from .metrics import HIGHER_IS_BETTER, METRICS, NonFinite, scores, ssim_window


def _images(folder: Path, role: str) -> dict[str, Path]:
    found = {image_stem(p): p for p in sorted(folder.iterdir()) if is_image_file(p)}
    if not found:
        raise UserError(f"no TIFF or .npy images in the {role} folder {folder}")
    return found


def _is_folder(path: Path, role: str) -> bool:
    """Whether ``path`` is a folder (else an image file); a missing path or a file that is no image is refused."""
    if path.is_dir():
        return True
    if not path.exists():
        raise UserError(f"{role} {path} not found; give a TIFF or .npy image, or a folder of them")
    if not is_image_file(path):
        raise UserError(f"{role} {path} is not a TIFF or .npy image; give one, or a folder of them")
    return False


def _paired(pred: Path, truth: Path, role: str) -> tuple[dict[str, Path], dict[str, Path]]:
    """({name: prediction}, {name: ground truth}): two files are one image (named after the prediction, as the
    original's --prediction_file/--target_file), two folders are paired by file name; a file with a folder is refused."""
    folders = _is_folder(pred, role), _is_folder(truth, "ground truth")
    if folders[0] != folders[1]:
        kinds = ["a folder" if f else "a file" for f in folders]
        raise UserError(f"the {role} {pred} is {kinds[0]} but the ground truth {truth} is {kinds[1]}; give two image "
                        "files (one pair) or two folders (paired by file name)")
    if not folders[0]:
        return {image_stem(pred): pred}, {image_stem(pred): truth}
    return _images(pred, role), _images(truth, "ground-truth")


def score_folder(pred: Path, truth: Path) -> dict[str, dict[str, float]]:
    """Metrics per image name, predictions and ground truth matched by file name (or one file pair)."""
    return score_images(pred, truth)[0]


def score_images(pred: Path, truth: Path) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """(metrics per image name, SSIM window per image name) of two folders or two image files; the first bad
    image raises a UserError naming it."""
    predictions, targets = _paired(pred, truth, "prediction")
    alone = sorted(set(predictions) ^ set(targets))
    if alone:
        raise UserError(f"images without a partner of the same name: {', '.join(alone[:10])}; "
                        "predictions and ground truth must pair up")
    results, windows = {}, {}
    for name in sorted(predictions):
        x, g = read_image(predictions[name]), read_image(targets[name])
        if x.shape != g.shape:
            raise UserError(f"{predictions[name].name} is {x.shape} but its ground truth {targets[name].name} is "
                            f"{g.shape}; evaluate predictions of the same size")
        try:
            windows[name] = ssim_window(g.shape)
            results[name] = scores(x, g)
        except NonFinite as err:
            path, fix = ((predictions[name], "check the model and its input") if err.role == "prediction"
                         else (targets[name], "fix the image or leave it out"))
            raise UserError(f"{path}: {err}; {fix}") from None
        except ValueError as err:
            raise UserError(f"{targets[name]}: {err}; leave it out of the evaluation") from None
    return results, windows


@dataclass
class Comparison:
    metric: str
    mean_difference: float
    p_value: float  # one-tailed paired t-test that the model beats the baseline


def compare(model: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]]) -> list[Comparison]:
    """Per metric: mean of (model - baseline) and the one-tailed paired t-test of the paper's Fig. 2b."""
    from scipy.stats import ttest_rel

    if set(model) != set(baseline):
        raise UserError("the baseline's predictions must cover the same images as the model's")
    names = sorted(model)
    out = []
    for metric in METRICS:
        a = np.array([model[n][metric] for n in names])
        b = np.array([baseline[n][metric] for n in names])
        alternative = "greater" if HIGHER_IS_BETTER[metric] else "less"
        p = float(ttest_rel(a, b, alternative=alternative).pvalue) if len(names) > 1 else float("nan")
        out.append(Comparison(metric, float(np.mean(a - b)), p))
    return out


def comparison_table(model: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]],
                     names: tuple[str, str] = ("model", "baseline")) -> list[str]:
    """Markdown rows: per metric both means, their difference and the one-tailed paired p-value."""
    lines = [f"| metric | {names[0]} | {names[1]} | {names[0]} - {names[1]} | one-tailed paired p |", "|---|---:|---:|---:|---:|"]
    for c in compare(model, baseline):
        means = [np.mean([r[c.metric] for r in scores.values()]) for scores in (model, baseline)]
        lines.append(f"| {c.metric} | {means[0]:.4f} | {means[1]:.4f} | {c.mean_difference:+.4f} | {c.p_value:.3g} |")
    return lines


def write_csv(path: Path, results: dict[str, dict[str, float]], baseline: Optional[dict[str, dict[str, float]]],
              windows: dict[str, str]) -> None:
    """One row per image; ``ssim_window`` says whether SSIM was 3D or per 2D plane (volumes thinner than 7)."""
    columns = ["image", *METRICS] + ([f"baseline_{m}" for m in METRICS] if baseline else []) + ["ssim_window"]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for name, row in results.items():
            values = [row[m] for m in METRICS] + ([baseline[name][m] for m in METRICS] if baseline else [])
            writer.writerow([name, *[f"{v:.6g}" for v in values], windows[name]])


SMALL_SAMPLE = 5  # fewer paired images than this: a t-test's p-value says little (one outlier sets it)


def box_plots(path: Path, results: dict[str, dict[str, float]], baseline: Optional[dict[str, dict[str, float]]],
              comparisons: list[Comparison]) -> None:
    """One box per model (the baseline's beside it when given) for every metric, titled with which way is better
    and the paired t-test's p-value where there is a baseline."""
    fig, axes = pyplot().subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.6))
    tests = {c.metric: c for c in comparisons}
    for ax, metric in zip(axes, METRICS):
        better = "higher is better" if HIGHER_IS_BETTER[metric] else "lower is better"
        if baseline is None:
            ax.boxplot([[r[metric] for r in results.values()]], tick_labels=["model"])
            ax.set_title(f"{metric} ({better})", fontsize=9)
            continue
        data = [[r[metric] for r in baseline.values()], [r[metric] for r in results.values()]]
        ax.boxplot(data, tick_labels=["baseline", "model"])
        small = f", n = {len(results)}: too few to carry" if len(results) < SMALL_SAMPLE else ""
        ax.set_title(f"{metric} ({better})\np = {tests[metric].p_value:.3g} (one-tailed, paired{small})", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, 100)


def default_output(pred: str | Path) -> Path:
    """Where the CSV goes without --out: beside the predictions' folder (or file), named after it."""
    folder = Path(pred).resolve()
    return folder.parent / f"{folder.name if folder.is_dir() else image_stem(folder)}-metrics.csv"


def evaluate(pred: str | Path, truth: str | Path, out: Optional[str | Path] = None, baseline: Optional[str | Path] = None,
             plot: Optional[str | Path] = None, overwrite: bool = False,
             echo: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Score ``pred`` against ``truth``; write the CSV (and the box plots; with a baseline, the comparison).

    ``out`` defaults to ``default_output(pred)``; no existing file is replaced without ``overwrite``.
    """
    out = Path(out) if out is not None else default_output(pred)
    outputs = [out] + ([Path(plot)] if plot else [])
    refuse_to_replace(outputs, overwrite)
    for path in outputs:
        if not path.parent.is_dir():
            raise UserError(f"the folder {path.parent} for {path.name} does not exist; create it first")
    results, windows = score_images(Path(pred), Path(truth))
    base = score_folder(Path(baseline), Path(truth)) if baseline else None
    write_csv(out, results, base, windows)
    for metric in METRICS:
        values = np.array([r[metric] for r in results.values()])
        echo(f"{metric:10s} mean {values.mean():.4f}  sd {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}  "
             f"({len(values)} images)")
    if base is not None:
        comparisons = compare(results, base)
        for c in comparisons:
            echo(f"{c.metric:10s} model - baseline {c.mean_difference:+.4f}  one-tailed paired t-test p = {c.p_value:.3g}")
        if len(results) < SMALL_SAMPLE:
            echo(f"note: {len(results)} paired images are too few for these p-values to say much (one image can set "
                 "them); compare on more test images")
    if plot:
        box_plots(Path(plot), results, base, compare(results, base) if base is not None else [])
    echo(f"wrote {out}" + (f" and {plot}" if plot else ""))
    return results
