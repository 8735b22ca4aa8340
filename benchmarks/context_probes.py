"""For benchmarks/context_ablation.py: every task's runs, found or trained; a trained GVTNet's whole images
predicted in memory with chosen contexts (each GVTO's K^T V / N); the statistics entering each GVTO; batch norm on
an image's own statistics; a training run probed at every checkpoint."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from torch import nn

from gvtnet_zoo.config import Spec
from gvtnet_zoo.data.samples import prepare_label_free_2d
from gvtnet_zoo.data.synthetic import write_synthetic
from gvtnet_zoo.data.normalization import normalize_input
from gvtnet_zoo.evaluate.metrics import scores
from gvtnet_zoo.image_io.images import read_image
from gvtnet_zoo.models import build_model
from gvtnet_zoo.nn.attention import AttentionContext, GlobalAttention
from gvtnet_zoo.spec_loading import load_spec
from gvtnet_zoo.train.observe import TrainingEvent
from gvtnet_zoo.train.trainer import train
from paper_claims import TASKS, trained_package  # benchmarks/ is on the path of the scripts that import this

SEED = 0


def finished(root: Path, steps: int) -> bool:
    """Whether the run in ``root`` trained to ``steps`` (its last checkpoint is there)."""
    last = root / "checkpoints" / "last.pt"
    return last.exists() and torch.load(last, map_location="cpu", weights_only=False)["step"] >= steps


def trained_run(work: Path, key: str, spec_name: str, overrides: list[str], data: Path, val: Optional[Path],
                steps: int, seed: int = SEED) -> Path:
    """Train ``spec_name`` into work/runs/KEY unless that run has finished already (its last checkpoint at ``steps``)."""
    root = work / "runs" / key
    if finished(root, steps):
        return root
    every = max(steps // 5, 1)
    spec = load_spec(spec_name, [*overrides, f"train.steps={steps}", f"train.val_every={every}",
                                 f"train.checkpoint_every={every}", f"train.seed={seed}"])
    start = time.perf_counter()
    train(spec, data, root, val=val, overwrite=True, command="benchmarks/context_ablation.py")
    print(f"{key}: {steps} steps in {time.perf_counter() - start:.0f} s", flush=True)
    return root


def load_network(run: Path, checkpoint: str = "best") -> tuple[Spec, nn.Module]:
    """The run's best (or last) checkpoint as an eval-mode network (and its spec)."""
    state = torch.load(run / "checkpoints" / f"{checkpoint}.pt", map_location="cpu", weights_only=False)
    spec = Spec.model_validate(state["spec"])
    network = build_model(spec).eval()
    network.load_state_dict(state["model"])
    return spec, network


def attentions(network: nn.Module) -> list[GlobalAttention]:
    """The network's GlobalAttentions in forward order (module order is forward order in these nets)."""
    return [m for m in network.modules() if isinstance(m, GlobalAttention)]


# ---------------------------------------------------------------- running a network with chosen contexts

def load_pair(pattern: str | Path, spec: Spec, norm: Optional[tuple[float, float]] = None) -> tuple[np.ndarray, np.ndarray]:
    """(normalized source (1, C, *S) float32, raw target) of one image; ``norm``: (low, high) to scale the
    source with instead of its own percentiles."""
    raw = read_image(str(pattern) % "source").astype(np.float32)
    x = normalize_input(raw, spec.data) if norm is None else (raw - norm[0]) / (norm[1] - norm[0] + 1e-6)
    return x[None, None].astype(np.float32), read_image(str(pattern) % "target")


def _padded(x: np.ndarray, step: list[int]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """``x`` mirrored up to a multiple of ``step`` on its trailing axes, and the slice that crops back."""
    space = x.shape[x.ndim - len(step):]
    pad = [(0, 0)] * (x.ndim - len(step)) + [(0, -n % s) for n, s in zip(space, step)]
    return np.pad(x, pad, mode="reflect"), tuple(slice(0, n) for n in x.shape)


@contextmanager
def fixed_contexts(network: nn.Module, contexts: list[Optional[torch.Tensor]]) -> Iterator[None]:
    """Each GVTO whose entry is a tensor (heads, d, d), K^T V / N, applies it instead of its own; None: its own."""
    for attention, kv in zip(attentions(network), contexts):
        if kv is not None:
            state = AttentionContext(1.0)
            state.kv, state.query_count = kv[None], 1
            attention.context = state
    try:
        yield
    finally:
        for attention in attentions(network):
            attention.context = None


def predict(network: nn.Module, spec: Spec, x: np.ndarray,
            contexts: Optional[list[Optional[torch.Tensor]]] = None) -> np.ndarray:
    """The network's mean output on a whole normalized image (1, C, *S) -> (*S_out)."""
    xp, crop = _padded(x, spec.model.size_step())
    with torch.no_grad(), fixed_contexts(network, contexts or []):
        y = network(torch.from_numpy(np.ascontiguousarray(xp))).numpy()
    if y.ndim == xp.ndim:
        return y[crop][0, 0]
    return y[0, 0, :x.shape[-2], :x.shape[-1]]  # a 3D-to-2D projection: the output is (B, C, Y, X)


def probe_gvtos(network: nn.Module, spec: Spec, x: np.ndarray,
                contexts: Optional[list[Optional[torch.Tensor]]] = None) -> list[dict[str, object]]:
    """Per GVTO on a batch of images: their own contexts K^T V / N (B, heads, d, d), the mean and std over voxels
    of the features entering it (per channel), and the rms of its query and of its attention term (output less
    bias)."""
    found: list[dict[str, object]] = []

    def hook(module: GlobalAttention, inputs: tuple, output: tuple) -> None:
        a = inputs[0]
        out, q = output
        kv = module.key_value_context(module.key(a), module.value(a)) / q[0, 0].numel()
        term = out - module.output.bias.view(1, -1, *[1] * (out.ndim - 2))
        flat = a.transpose(0, 1).reshape(a.shape[1], -1)
        found.append({"kv": kv, "mean": flat.mean(1), "std": flat.std(1), "q": float(q.pow(2).mean().sqrt()),
                      "term": float(term.pow(2).mean().sqrt())})

    handles = [m.register_forward_hook(hook) for m in attentions(network)]
    try:
        predict(network, spec, x, contexts)
    finally:
        for handle in handles:
            handle.remove()
    return found


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b||_F / ||b||_F."""
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@contextmanager
def batch_statistics(network: nn.Module) -> Iterator[None]:
    """Batch norm normalizes by the image's own statistics instead of its running ones (which stay as they are)."""
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.train()
        m.momentum = 0.0  # running = (1 - 0) * running: nothing learned from the test image is kept
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.eval()
            m.momentum = momentum



# ---------------------------------------------------------------- one trained GVTNet and its images

Contexts = list[Optional[torch.Tensor]]


class Study:
    """A trained GVTNet with its task's held-out (test) and training images, normalized as its package does."""

    def __init__(self, run: Path, task: dict, checkpoint: str = "best") -> None:
        self.spec, self.network = load_network(run, checkpoint)
        self.paths = {region: task.get(region, []) for region in ("test", "train", "val")}
        self.images = {region: [load_pair(p, self.spec) for p in paths] for region, paths in self.paths.items()}

    def contexts(self, region: str) -> list[torch.Tensor]:
        """Per GVTO: K^T V / N of each image of ``region``, averaged over its images."""
        found = [probe_gvtos(self.network, self.spec, x) for x, _ in self.images[region]]
        return [torch.stack([f[i]["kv"][0] for f in found]).mean(0) for i in range(len(found[0]))]

    def patch_probes(self, count: int = 32) -> list[dict[str, object]]:
        """``probe_gvtos`` over ``count`` random training patches (the spec's patch size, seed 0), in one batch."""
        rng = np.random.default_rng(SEED)
        size = self.spec.data.patch_size
        blocks = []
        for k in range(count):
            x = self.images["train"][k % len(self.images["train"])][0]
            start = [int(rng.integers(0, n - s + 1)) for n, s in zip(x.shape[2:], size)]
            blocks.append(x[(0, slice(None), *[slice(a, a + s) for a, s in zip(start, size)])])
        return probe_gvtos(self.network, self.spec, np.stack(blocks))

    def patch_contexts(self, count: int = 32) -> tuple[list[torch.Tensor], list[float]]:
        """Per GVTO over ``count`` random training patches (the spec's patch size, seed 0): the mean K^T V / N,
        and the patches' mean relative distance from it (their spread)."""
        found = self.patch_probes(count)
        means = [f["kv"].mean(0) for f in found]
        spreads = [float(np.mean([relative(kv, m) for kv in f["kv"]])) for f, m in zip(found, means)]
        return means, spreads

    def score(self, region: str, contexts: Optional[Contexts] = None, norm: Optional[tuple[float, float]] = None,
              network: Optional[nn.Module] = None) -> dict[str, float]:
        """CARE-protocol scores of the region's images predicted whole (averaged over its images)."""
        network = network or self.network
        found = []
        for index, (x, truth) in enumerate(self.images[region]):
            if norm is not None:
                x = load_pair(self.paths[region][index], self.spec, norm)[0]
            found.append(scores(predict(network, self.spec, x, contexts), truth))
        return {k: float(np.mean([f[k] for f in found])) for k in found[0]}

    def zero(self) -> Contexts:
        return [torch.zeros_like(c) for c in self.contexts("train")]

    def only(self, index: int) -> Contexts:
        """Every GVTO its own context except GVTO ``index``, zeroed."""
        return [torch.zeros_like(c) if i == index else None for i, c in enumerate(self.contexts("train"))]


def row(label: str, s: dict[str, float]) -> str:
    return f"| {label} | {s['pearson_r']:.3f} | {s['nrmse']:.3f} | {s['ssim']:.3f} |"


HEADER = ["| prediction | Pearson r | NRMSE | SSIM |", "|---|---:|---:|---:|"]



def unet_scores(run: Path, task: dict) -> dict[str, float]:
    """The U-Net baseline on the task's test images (predicted whole, as the GVTNet)."""
    spec, network = load_network(run)
    found = [scores(predict(network, spec, x), truth) for x, truth in (load_pair(p, spec) for p in task["test"])]
    return {k: float(np.mean([f[k] for f in found])) for k in found[0]}


def feature_rms(stats: dict[str, object]) -> float:
    """Root mean square over voxels and channels of the features entering a GVTO."""
    mean, std = stats["mean"], stats["std"]
    return float((mean.pow(2) + std.pow(2)).mean().sqrt())


def image_score(study: Study, x: np.ndarray, truth: np.ndarray, contexts: Optional[Contexts] = None,
                 network: Optional[nn.Module] = None) -> float:
    return scores(predict(network or study.network, study.spec, x, contexts), truth)["pearson_r"]


def blockwise(study: Study, x: np.ndarray, contexts: Optional[Contexts] = None) -> np.ndarray:
    """The image predicted in disjoint blocks of the training patch size, each on its own (no halo: block borders
    are as a training patch's), so each GVTO sees a context over a training-sized region."""
    out = np.zeros(x.shape[2:], np.float32)
    size = study.spec.data.patch_size
    for corner in np.ndindex(*[-(-n // p) for n, p in zip(x.shape[2:], size)]):
        region = tuple(slice(c * p, min((c + 1) * p, n)) for c, p, n in zip(corner, size, x.shape[2:]))
        out[region] = predict(study.network, study.spec, x[(0, slice(None), *region)][None], contexts)
    return out


# ---------------------------------------------------------------- the runs of every task

def _projection_data(work: Path) -> Path:
    """benchmarks/projection_vs_max.py's synthetic stacks (same seeds and sizes)."""
    data = work / "data" / "projection"
    if not (data / "test").exists():
        write_synthetic("projection", data, 0, 6, (24, 224, 224), seed=11)
        write_synthetic("projection", data / "training", 12, 2, (24, 128, 128), seed=10)
    return data


CARE_DEMO_WIDTH = ["model.base_channels=8", "data.patch_size=[16,32,32]", "data.batch_size=4", "data.workers=0",
                   "data.flips=true", "data.rotations=true"]  # the demo pair's data settings, the paper's net


def task_runs(work: Path, steps: dict[str, int]) -> dict[str, dict]:
    """Per task: the GVTNet's run, its data, and which images are held out (test) and trained on."""
    d3 = TASKS["3D denoising"]["prepare"](work / "data" / "3d")
    trained_package("3D denoising", "GVTNet", work, d3, steps["3d"], False)
    trained_package("3D denoising", "U-Net", work, d3, steps["3d"], False)
    seeds = [trained_run(work, f"3d-gvtnet-seed{seed}", TASKS["3D denoising"]["models"]["GVTNet"], [], d3 / "train",
                         d3 / "val", steps["3d"], seed) for seed in range(1, steps["seeds"])]
    d2 = work / "data" / "2d"
    if not (d2 / "test").exists():
        prepare_label_free_2d(d2)
    proj = _projection_data(work)
    three = {"test": [d3 / "test/%s/bottom.tif"], "train": [d3 / "train/%s/top_left.tif", d3 / "train/%s/top_right.tif"],
             "val": [d3 / "val/%s/band.tif"]}
    return {
        "3D denoising, demo GVTNet (batch norm)": {"run": work / "runs" / "3d-gvtnet", **three,
                                                   "unet": work / "runs" / "3d-unet", "seeds": seeds},
        "3D denoising, paper's CARE GVTNet at demo width (no batch norm)": {
            "run": trained_run(work, "3d-care-gvtnet", "gvtnet-care-denoise", CARE_DEMO_WIDTH, d3 / "train",
                               d3 / "val", steps["3d"]), **three},
        "2D label-free, demo GVTNet (batch norm)": {
            "run": trained_run(work, "2d-gvtnet", "demo-gvtnet-label-free-2d", [], d2 / "train", None, steps["2d"]),
            "test": [d2 / "test/%s/t08.tif", d2 / "test/%s/t09.tif"],
            "train": [d2 / "train/%s/t00.tif", d2 / "train/%s/t04.tif"]},
        "3D-to-2D projection, demo GVTNet (no batch norm)": {
            "run": trained_run(work, "proj-gvtnet", "demo-gvtnet-projection", [], proj / "training/train",
                               proj / "training/test", steps["projection"]),
            "test": sorted(str(p).replace("/source/", "/%s/") for p in (proj / "test/source").iterdir())[:3],
            "train": sorted(str(p).replace("/source/", "/%s/") for p in (proj / "training/train/source").iterdir())[:3]},
    }


def training_trace(work: Path, task: dict, steps: int, every: int = 100) -> tuple[list[str], list[dict[str, float]]]:
    """The 3D demo GVTNet (seed 0 recipe) trained again, each checkpoint probed on the test volume and on the dense
    training volume (own contexts against K^T V = 0): when the harm appears, and whether it stays."""
    cache = work / "trace.json"
    if not cache.exists():
        root = work / "runs" / "3d-gvtnet-trace"
        spec = load_spec(TASKS["3D denoising"]["models"]["GVTNet"], [f"train.steps={steps}", f"train.val_every={every}",
                                                                   f"train.checkpoint_every={every}", f"train.seed={SEED}"])
        rows: list[dict[str, float]] = []

        def probe(event: TrainingEvent) -> None:
            if event.sample is None:
                return
            study = Study(root, task, "last")
            found = {"step": event.step}
            for label, (x, truth) in (("test", study.images["test"][0]), ("dense train", study.images["train"][1])):
                found[f"{label} own"] = image_score(study, x, truth)
                found[f"{label} zero"] = image_score(study, x, truth, study.zero())
            rows.append(found)

        train(spec, Path(str(task["train"][0]) % "source").parent.parent, root, val=Path(str(task["val"][0]) % "source").parent.parent,
              overwrite=True, command="benchmarks/context_ablation.py", observer=probe)
        cache.write_text(json.dumps(rows))
    rows = json.loads(cache.read_text())
    lines = ["| step | test: own contexts | test: K^T V = 0 | dense training volume: own | dense training volume: K^T V = 0 |",
             "|---:|---:|---:|---:|---:|"]
    return lines + [f"| {r['step']} | {r['test own']:.3f} | {r['test zero']:.3f} | {r['dense train own']:.3f} | "
                    f"{r['dense train zero']:.3f} |" for r in rows], rows
