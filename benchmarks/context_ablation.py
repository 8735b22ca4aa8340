"""Why the GVTNet's global context hurts on some images, measured: every GVTO's K^T V / N ablated on held-out,
training and validation images, controlled probes of the candidate mechanisms, a training trace, seeds, every
task, and candidate remedies against the U-Net (docs/results.md, the section between the markers below).

The 3D demo pair trains on benchmarks/paper_claims.py's data and overrides (its TASKS and ``trained_package``);
the other runs (more seeds, the 2D label-free demo, the paper's CARE GVTNet at demo width without batch norm,
the projection demo) train here; benchmarks/context_probes.py runs the networks with chosen contexts. Seed 0
unless said: a difference between two rows of one network is measured exactly, a difference between two
trainings carries the seed's spread too.

    python benchmarks/context_ablation.py --work bench-context --long --out docs/results.md

Run it after paper_claims.py and projection_vs_max.py (which rewrite docs/results.md whole). Runs are kept in
--work and reused, measurements in --work/measured (--remeasure measures again); --out replaces only the
marked section.
"""

from __future__ import annotations

import argparse
import pickle
import platform
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Callable, Optional, TypeVar

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from context_probes import (CARE_DEMO_WIDTH, HEADER, SEED, Study, attentions, batch_statistics,  # noqa: E402
                            blockwise, feature_rms, finished, image_score, probe_gvtos, relative, row, task_runs,
                            trained_run, training_trace, unet_scores)
from paper_claims import TASKS  # noqa: E402
from report import write_between  # noqa: E402

from gvtnet_zoo.evaluate.metrics import scores  # noqa: E402
from gvtnet_zoo.export.package import package_run  # noqa: E402
from gvtnet_zoo.image_io.images import read_image  # noqa: E402
from gvtnet_zoo.predict.context_report import report_files  # noqa: E402

T = TypeVar("T")
BEGIN = "<!-- context-ablation: written by benchmarks/context_ablation.py -->"
END = "<!-- /context-ablation -->"


def ablation(study: Study, unet: Optional[dict[str, float]] = None) -> tuple[list[str], dict[str, float]]:
    """The issue's probe: every GVTO's context own, zeroed (all, one at a time), or taken from training data."""
    n = len(attentions(study.network))
    train_ctx = study.contexts("train")
    patch_ctx, _ = study.patch_contexts()
    results = {"own": study.score("test"), "zero": study.score("test", study.zero()),
               "train": study.score("test", train_ctx), "patch": study.score("test", patch_ctx),
               "train own": study.score("train"), "train zero": study.score("train", study.zero())}
    lines = [*HEADER] + ([row("U-Net, test", unet)] if unet else []) + [
        row("GVTNet, test, own contexts", results["own"]),
        row("GVTNet, test, every GVTO's K^T V set to 0", results["zero"])]
    if n > 1:
        for i in range(n):
            results[f"zero {i + 1}"] = study.score("test", study.only(i))
            lines.append(row(f"GVTNet, test, only GVTO {i + 1} of {n} zeroed", results[f"zero {i + 1}"]))
    lines += [row("GVTNet, test, contexts of the training images (whole)", results["train"]),
              row(f"GVTNet, test, mean context of 32 training patches ({' x '.join(map(str, study.spec.data.patch_size))})",
                  results["patch"]),
              row("GVTNet, training images, own contexts", results["train own"]),
              row("GVTNet, training images, K^T V set to 0", results["train zero"])]
    if study.images["val"]:
        results["val own"], results["val zero"] = study.score("val"), study.score("val", study.zero())
        lines += [row("GVTNet, validation image, own contexts", results["val own"]),
                  row("GVTNet, validation image, K^T V set to 0", results["val zero"])]
    return lines, {k: v["pearson_r"] for k, v in results.items()}



def amplification(study: Study) -> tuple[list[str], list[dict[str, float]]]:
    """Per image (and over training patches), per GVTO: the rms of the features entering it, ||K^T V / N||, the
    rms of its attention term, each relative to the training patches'; and what the image's own contexts cost."""
    reference = study.patch_probes()
    n = len(reference)
    head = ("| image | Pearson r own / K^T V = 0 | " + " | ".join(f"GVTO {i + 1}: features, K^T V / N, term" for i in range(n))
            + " |")
    lines = ["Each GVTO's input features (rms), context (Frobenius norm of K^T V / N) and attention term (rms of its "
             "output less bias), as multiples of the same quantities over 32 training patches; then the Pearson r of "
             "the whole image with its own contexts and with every K^T V set to 0.", "", head,
             "|---|---:|" + "---:|" * n]
    found = []
    for region in ("train", "val", "test"):
        for path, (x, truth) in zip(study.paths[region], study.images[region]):
            stats = probe_gvtos(study.network, study.spec, x)
            ratios = [(feature_rms(s) / feature_rms(r), float(s["kv"][0].norm() / r["kv"].norm(dim=(-2, -1)).pow(2).sum(-1).mean().sqrt()),
                       s["term"] / r["term"]) for s, r in zip(stats, reference)]
            own, zero = image_score(study, x, truth), image_score(study, x, truth, study.zero())
            found.append({"own": own, "zero": zero, "ratios": ratios})
            lines.append(f"| {region}: {Path(str(path)).name} | {own:.3f} / {zero:.3f} | "
                         + " | ".join(f"{f:.2f}, {c:.2f}, {t:.2f}" for f, c, t in ratios) + " |")
    return lines, found


def controls(study: Study) -> tuple[list[str], dict[str, float]]:
    """Controlled probes on the test image(s): batch norm's statistics, the input's normalization, and where
    the contexts come from (Pearson r)."""
    results: dict[str, float] = {}
    zero = study.zero()
    results["own"] = study.score("test")["pearson_r"]
    results["zero"] = study.score("test", zero)["pearson_r"]
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in study.network.modules()):
        with batch_statistics(study.network):
            results["bn own"] = study.score("test")["pearson_r"]
            results["bn zero"] = study.score("test", zero)["pearson_r"]
            results["bn train own"] = study.score("train")["pearson_r"]
    raw = np.concatenate([read_image(str(p) % "source").ravel() for p in study.paths["train"]]).astype(np.float32)
    norm = tuple(float(v) for v in np.percentile(raw, study.spec.data.input_percentiles))
    results["trainnorm own"] = study.score("test", norm=norm)["pearson_r"]
    results["trainnorm zero"] = study.score("test", zero, norm=norm)["pearson_r"]
    own = study.contexts("test")
    patch, spread = study.patch_contexts()
    results["rescaled"] = study.score("test", [c * (p.norm() / c.norm()) for c, p in zip(own, patch)])["pearson_r"]
    results["patch"] = study.score("test", patch)["pearson_r"]
    for k, path in enumerate(study.paths["train"]):
        image_ctx = [probe["kv"][0] for probe in probe_gvtos(study.network, study.spec, study.images["train"][k][0])]
        results[f"from {Path(str(path)).name}"] = study.score("test", image_ctx)["pearson_r"]
    for key, ctx in (("blocks own", None), ("blocks zero", zero)):
        results[key] = float(np.mean([scores(blockwise(study, x, ctx), truth)["pearson_r"]
                                      for x, truth in study.images["test"]]))
    distance = [relative(c, p) for c, p in zip(own, patch)]
    labels = {"own": "own contexts (as predicted)", "zero": "every K^T V set to 0",
              "bn own": "batch norm on the image's own statistics, own contexts",
              "bn zero": "batch norm on the image's own statistics, K^T V = 0",
              "bn train own": "(training images) batch norm on their own statistics, own contexts",
              "trainnorm own": "input scaled by the training images' percentiles, own contexts",
              "trainnorm zero": "input scaled by the training images' percentiles, K^T V = 0",
              "rescaled": "own contexts rescaled to the training-patch mean's norm",
              "patch": "the training patches' mean context",
              "blocks own": "predicted in blocks of the training patch size (no halo), each its own context",
              "blocks zero": "predicted in blocks of the training patch size (no halo), K^T V = 0"}
    lines = ["| test image(s), probe | Pearson r |", "|---|---:|"]
    lines += [f"| {labels.get(k, 'contexts of the training image ' + k[5:] if k.startswith('from ') else k)} | {v:.3f} |"
              for k, v in results.items()]
    lines += ["", "Relative Frobenius distance of the test image's K^T V / N from the training patches' mean, per GVTO: "
              + ", ".join(f"{d:.2f}" for d in distance) + "; the training patches' own spread around that mean: "
              + ", ".join(f"{s:.2f}" for s in spread) + "."]
    return lines, results



def context_sweep(study: Study, factors: tuple[float, ...] = (0.0, 0.5, 0.75, 1.0, 1.25)
                  ) -> tuple[list[str], list[list[float]]]:
    """Test Pearson r with each GVTO's own context multiplied by a factor (one GVTO at a time, the others own):
    how the harm grows with the context's size."""
    own = study.contexts("test")
    lines = ["| GVTO scaled | " + " | ".join(f"x {f:g}" for f in factors) + " |", "|---|" + "---:|" * len(factors)]
    curves = []
    for i in range(len(own)):
        values = [study.score("test", [c * f if j == i else None for j, c in enumerate(own)])["pearson_r"]
                  for f in factors]
        lines.append(f"| GVTO {i + 1} (own norm {float(own[i].norm()):.3g}) | " + " | ".join(f"{v:.3f}" for v in values) + " |")
        curves.append(values)
    return lines, curves


def remedy_rows(label: str, study: Study, unet: Optional[dict[str, float]]) -> tuple[str, dict[str, float]]:
    """One line of the remedy table: U-Net, the GVTNet as packaged (own contexts), with every K^T V zeroed, and
    with the training patches' mean context (what `predict --context training` would apply)."""
    values = {"unet": unet["pearson_r"] if unet else float("nan"), "own": study.score("test")["pearson_r"],
              "zero": study.score("test", study.zero())["pearson_r"],
              "patch": study.score("test", study.patch_contexts()[0])["pearson_r"]}
    if study.images["train"]:
        values["train own"] = study.score("train")["pearson_r"]
    cells = " | ".join("n/a" if np.isnan(v) else f"{v:.3f}" for v in values.values())
    return f"| {label} | {cells} |", values


def write_section(text: str, out: Path) -> None:
    """Replace the marked section of ``out``; append it, markers and all, where paper_claims.py's rewrite left none."""
    current = out.read_text() if out.exists() else ""
    if BEGIN in current and END in current:
        write_between(out, BEGIN, END, text.strip())
    else:
        out.write_text(current.rstrip("\n") + ("\n\n" if current else "") + f"{BEGIN}\n{text.strip()}\n{END}\n")




def _reading(control: dict[str, float], found: list[dict], seeds: list[dict[str, float]], curves: list[list[float]],
             rows: list[dict[str, float]], others: dict[str, dict[str, float]], long: list[dict[str, float]],
             paired: list[tuple[dict[str, float], dict[str, float]]]) -> list[str]:
    """What the 3D demo's numbers say about each candidate mechanism, in words computed from them."""
    harm = 0.05  # a loss of Pearson r counted as harm: well above the <= 0.001 that zeroing costs where it is harmless
    harmed = [f for f in found if f["zero"] - f["own"] > harm]
    spared = [f for f in found if f not in harmed]
    lines = []
    if harmed and spared:
        lines.append(f"- **Not new data: dense volumes.** Own contexts cost more than {harm} of r on {len(harmed)} of "
                     f"{len(found)} whole images, the dense training volume among them. The harmed images have the larger "
                     f"first-GVTO context (>= {min(f['ratios'][0][1] for f in harmed):.2f} of the training patches' rms "
                     f"norm, against <= {max(f['ratios'][0][1] for f in spared):.2f} where zeroing changes nothing).")
    blocks = control["blocks zero"] - control["blocks own"]
    lines.append(f"- **The size of the region the context is taken over** is {'ruled out' if blocks > harm else 'supported'}: "
                 f"predicted in blocks of the training patch size, each its own context, the test volume gets r "
                 f"{control['blocks own']:.3f} against {control['blocks zero']:.3f} with K^T V = 0. The test volume's "
                 "whole-image contexts also lie inside the training patches' spread (the distances under the probes).")
    if "bn own" in control:
        fixed = control["bn own"] >= control["zero"] - 0.01
        lines.append(f"- **Batch norm's running statistics meeting a new image** {'supported' if fixed else 'ruled out'}: "
                     f"normalizing by the image's own statistics gives r {control['bn own']:.3f} (own contexts) and "
                     f"{control['bn zero']:.3f} (K^T V = 0), against {control['own']:.3f} and {control['zero']:.3f} with "
                     "the running statistics.")
    unharmed = [name for name, v in others.items() if v["zero"] - v["own"] <= harm]
    lines.append("- **Batch norm as such** is implicated for this net, not shown to be the cause: "
                 + (f"{len(unharmed)} of {len(others)} other networks are not harmed ({'; '.join(unharmed)}), "
                    if unharmed else "every other network is harmed too, ")
                 + "and the paper's CARE GVTNet without batch norm at twice the steps gets own/zero r "
                 + ", ".join(f"{v['own']:.3f}/{v['zero']:.3f}" for v in long)
                 + " (one row per seed): its global context helps or is neutral. But the 2D demo has batch norm too.")
    same = abs(control["trainnorm own"] - control["own"]) < 0.01
    lines.append(f"- **Per-image normalization of the input** {'is ruled out' if same else 'matters'}: the test input "
                 f"scaled by the training images' percentiles gives r {control['trainnorm own']:.3f} (own {control['own']:.3f}).")
    steep = [(k + 1, c[1], c[3]) for k, c in enumerate(curves) if c[1] - c[3] > harm]
    lines.append("- **Softmax-free amplification.** The attention term is linear in K^T V / N and in the query, so a "
                 "larger context passes on whole: "
                 + ("; ".join(f"GVTO {k}'s own context at half size gives r {h:.3f}, at full size {f:.3f}" for k, h, f in steep)
                    if steep else "halving any one GVTO's context changes r by less than the harm threshold")
                 + f". Rescaled to the training patches' mean norm the test's own contexts give {control['rescaled']:.3f}. "
                 "Supported as the path (size of the term), not as the cause of the size.")
    onset = next((r["step"] for r in rows if r["test zero"] - r["test own"] > harm), None)
    lines.append("- **Over training.** " + (f"The harm first exceeds {harm} at step {onset}; " if onset else
                                            "The retrained run shows no harm at any checkpoint; ")
                 + "per checkpoint: " + ", ".join(f"{r['step']}: {r['test own']:.2f}/{r['test zero']:.2f}" for r in rows)
                 + " (test r own/zero, last checkpoints). The validation band is sparse and shows no harm (first table), so "
                 "choosing the best checkpoint by validation cannot avoid it.")
    hurt = sum(1 for v in seeds if v["zero"] - v["own"] > harm)
    costs = ", ".join(f"{v['zero'] - v['own']:.2f}" for v in seeds)
    fixed = sum(1 for v in seeds if v["patch"] >= v["zero"] - 0.01)
    lines.append(f"- **Seeds.** Own contexts cost more than {harm} of r in {hurt} of {len(seeds)} seeds of the demo "
                 f"recipe (by {costs}); the training patches' mean "
                 f"context recovers K^T V = 0's r in {fixed} of {len(seeds)}.")
    repaired = (f"repairs the demo GVTNet in only {fixed} of {len(seeds)} seeds (above), so gvtnet-zoo offers no such "
                "predict option" if fixed < len(seeds) else f"repairs the demo GVTNet in all {len(seeds)} seeds (above)")
    lines.append(f"- **Remedy.** A fixed context measured on training data (the patches' mean) {repaired}. The "
                 "opt-in spec `demo-gvtnet-care-paper-3d` (the paper's own CARE GVTNet, no batch norm, at demo width and "
                 "twice the steps) against the same-budget U-Net and unmodified demo GVTNet: "
                 + " ".join(_head_to_head(long, paired, harm)))
    return lines


def _margins(pairs: list[tuple[float, float]]) -> str:
    """'k of n seeds (by +a, +b, -c; mean +m)': how often, and by how much, the first of each pair is larger."""
    wins = sum(1 for a, b in pairs if a > b)
    return (f"{wins} of {len(pairs)} seeds (by " + ", ".join(f"{a - b:+.3f}" for a, b in pairs)
            + f"; mean {np.mean([a - b for a, b in pairs]):+.3f})")


def _head_to_head(long: list[dict[str, float]], paired: list[tuple[dict[str, float], dict[str, float]]],
                  harm: float) -> list[str]:
    """The opt-in spec's network against the U-Net (``long``, per seed) and against the unmodified demo GVTNet
    (``paired``: the two of each seed where both ran), all at twice the steps (test Pearson r as packaged), and what
    one shared test volume and a few seeds can carry."""
    long_demo = [d for _, d in paired]
    if not long:
        return ["not measured (run with --long)."]
    out = [f"it beats the U-Net in {_margins([(c['own'], c['unet']) for c in long])} of test r."]
    hurt = sum(1 for d in long_demo if d["zero"] - d["own"] > harm)
    if paired:
        out += [f"It beats the unmodified demo GVTNet in {_margins([(c['own'], d['own']) for c, d in paired])}; the "
                f"demo GVTNet beats the U-Net in {sum(1 for d in long_demo if d['own'] > d['unet'])} of "
                f"{len(long_demo)}, and its own contexts still cost more than {harm} of r in {hurt} of {len(long_demo)} "
                "(own/zero " + ", ".join(f"{d['own']:.3f}/{d['zero']:.3f}" for d in long_demo) + ")."]
    n, unet_gap = len(long), [c["own"] - c["unet"] for c in long]
    tie = max(c["unet"] for c in long) - min(c["unet"] for c in long)  # the U-Net's own spread over the seeds
    out.append(f"What this carries: the differences between trainings include each seed's spread, and all {n} seeds "
               f"score the same one test volume. Even {n} of {n} seeds on one side is what chance gives one time in "
               f"{2 ** n} (sign test, one-sided), so {n} seeds cannot reach the 5% level, and nothing here says how the "
               "ranking holds on other images. The U-Net's own r spreads by "
               f"{tie:.3f} over these seeds; against it the margins are "
               + ("all smaller than that: a tie at this scale, not a win." if max(abs(g) for g in unet_gap) < tie else
                  f"as large as {max(unet_gap, key=abs):+.3f}."))
    if paired:
        demo_gap = [c["own"] - d["own"] for c, d in paired]
        better, behind = sum(1 for g in demo_gap if g > tie), sum(1 for g in demo_gap if g < -tie)
        care_hurt = sum(1 for c in long if c["zero"] - c["own"] > harm)
        out.append(f"Against the unmodified demo GVTNet it is ahead by more than that spread in {better} of "
                   f"{len(demo_gap)} seeds and behind by more in {behind}; the demo GVTNet's context cost more than "
                   f"{harm} of r in {hurt} of {len(paired)} seeds here, the opt-in network's in {care_hurt} of {len(long)}, "
                   f"and the worst seed's r is {min(c['own'] for c, _ in paired):.3f} for the opt-in network against "
                   f"{min(d['own'] for d in long_demo):.3f} for the demo GVTNet.")
        even = max(abs(g) for g in unet_gap) < tie
        versus_unet = ("matches the U-Net here, it is not shown to beat it" if even else
                       "is not behind the U-Net here" if min(unet_gap) > -tie else "falls behind the U-Net in some seeds")
        if better == len(demo_gap) and min(unet_gap) > -tie:
            out.append("So for a 3D GVTNet at this scale train `demo-gvtnet-care-paper-3d` rather than the batch-norm "
                       f"demo spec, and keep comparing with the U-Net on a held-out volume: it {versus_unet}.")
        elif hurt > care_hurt and behind < len(demo_gap):
            out.append("So the opt-in spec does not reliably score above the demo GVTNet; what it removes is the risk of "
                       "a harmful context (a bad seed of the demo spec). Use it when training a 3D GVTNet at this scale, "
                       "and keep comparing with the U-Net on a held-out volume: it "
                       f"{versus_unet}.")
        else:
            out.append("So these numbers give no reason to prefer the opt-in spec over the demo spec.")
    return out


def _remedy_reading(rows: list[dict[str, float]], long: list[dict[str, float]],
                    paired: list[tuple[dict[str, float], dict[str, float]]]) -> list[str]:
    """Which GVTNet variant beats its U-Net, row by row (rows with a U-Net only), and the equal-budget comparison of
    the opt-in spec's network with the U-Net and the unmodified demo GVTNet."""
    compared = [r for r in rows if not np.isnan(r["unet"])]
    beats = {k: sum(1 for r in compared if r[k] > r["unet"]) for k in ("own", "zero", "patch")}
    lines = [f"Of {len(compared)} GVTNets with a U-Net at the same budget, {beats['own']} beat it as packaged (own "
             f"contexts), {beats['patch']} with the training patches' mean context, and {beats['zero']} with K^T V = 0."]
    if paired:
        lines += ["", ("At equal budget (the last rows, seed by seed, as packaged): the paper's CARE GVTNet (the "
                       f"opt-in spec's network) beats the U-Net in {_margins([(c['own'], c['unet']) for c in long])} "
                       f"and the unmodified demo GVTNet in {_margins([(c['own'], d['own']) for c, d in paired])}. One "
                       "test volume, shared by every seed: a count over seeds, not a significance test.")]
    return lines


def context_report_lines(work: Path, task: dict) -> list[str]:
    """`predict --context-report` of the seed-0 demo package (packaged here as paper_claims.py packages it, with
    the record) on the test, training and validation volumes."""
    package = work / "packages" / "3d-gvtnet-context.zip"
    if not package.exists():
        sample = TASKS["3D denoising"]["sample"]
        package_run(task["run"], package, echo=lambda _: None, overwrite=True,
                    sample=Path(str(task["train"][0]) % "source").parent.parent.parent / sample)
    heard: list[str] = []
    report_files(package, [Path(str(p) % "source") for region in ("test", "train", "val") for p in task[region]],
                 heard.append)
    return heard


def _flagged(lines: list[str]) -> list[str]:
    """The images a context report says lie outside the recorded spread."""
    names, current = [], ""
    for line in lines:
        if ": context report" in line:
            current = line.split(": context report")[0]
        elif "OUTSIDE" in line and current not in names:
            names.append(current)
    return names


def cached(work: Path, key: str, compute: Callable[[], T]) -> T:
    """``compute()``, kept in work/measured/KEY.pkl: the numbers of fixed runs do not change, so rewriting the
    report's words needs no second measurement (--remeasure, or deleting the file, measures again)."""
    path = work / "measured" / f"{key}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))
    return value


def measure(args: argparse.Namespace, tasks: dict[str, dict]) -> dict[str, object]:
    """Every number of the report (each cached as it is measured)."""
    work, demo = args.work, next(iter(tasks.values()))
    found: dict[str, object] = {"unet": cached(work, "unet", lambda: unet_scores(demo["unet"], demo))}
    study = Study(demo["run"], demo)
    for key, probe in (("ablation", lambda: ablation(study, found["unet"])), ("amplification", lambda: amplification(study)),
                       ("controls", lambda: controls(study)), ("sweep", lambda: context_sweep(study))):
        found[key] = cached(work, key, probe)
    found["seeds"] = [cached(work, f"seed{seed}", lambda run=run, seed=seed: remedy_rows(
        f"3D demo GVTNet, seed {seed}", Study(run, demo), found["unet"])) for seed, run in enumerate([demo["run"], *demo["seeds"]])]
    found["tasks"] = {name: cached(work, f"task-{k}", lambda task=task, name=name: (
        ablation(Study(task["run"], task))[0], remedy_rows(name, Study(task["run"], task), None)))
        for k, (name, task) in enumerate(list(tasks.items())[1:])}
    # the paper's net without batch norm at twice the budget, against the U-Net at the same twice
    d3, long = work / "data" / "3d", 2 * args.steps_3d
    # and the unmodified demo GVTNet (batch norm) at the same twice, so the remedy meets it at equal budget too
    found["long"], found["long demo"] = {}, {}
    for seed in range(args.seeds):
        tail = "" if seed == SEED else f"-seed{seed}"
        care, unet_long = work / "runs" / f"3d-care-gvtnet-{long}{tail}", work / "runs" / f"3d-unet-{long}{tail}"
        demo_long = work / "runs" / f"3d-gvtnet-{long}{tail}"
        if args.long:
            trained_run(work, care.name, "gvtnet-care-denoise", CARE_DEMO_WIDTH, d3 / "train", d3 / "val", long, seed)
            trained_run(work, unet_long.name, TASKS["3D denoising"]["models"]["U-Net"], [], d3 / "train", d3 / "val",
                        long, seed)
            trained_run(work, demo_long.name, TASKS["3D denoising"]["models"]["GVTNet"], [], d3 / "train", d3 / "val",
                        long, seed)
        if not (finished(care, long) and finished(unet_long, long)):
            continue
        unet = cached(work, f"unet-{long}{tail}", lambda unet_long=unet_long: unet_scores(unet_long, demo))
        found["long"][seed] = cached(work, f"long{tail}", lambda care=care, unet=unet, seed=seed: remedy_rows(
            f"3D denoising, paper's CARE GVTNet at demo width (no batch norm), {long} steps, seed {seed}; U-Net the "
            f"same", Study(care, demo), unet))
        if finished(demo_long, long):
            found["long demo"][seed] = cached(work, f"long-demo{tail}", lambda demo_long=demo_long, unet=unet, seed=seed:
                                              remedy_rows(f"3D denoising, demo GVTNet (batch norm, unmodified), {long} "
                                                          f"steps, seed {seed}; U-Net the same", Study(demo_long, demo),
                                                          unet))
    found["report"] = cached(work, "report", lambda: context_report_lines(work, demo))
    found["trace"] = training_trace(work, demo, args.steps_3d)  # last: it trains a run of its own if not cached
    return found


def report(args: argparse.Namespace, found: dict) -> str:
    """The docs/results.md section, its words computed from ``found``."""
    (table, _), (amp, images), (control_lines, control), (sweep, curves), (trace, rows) = (
        found["ablation"], found["amplification"], found["controls"], found["sweep"], found["trace"])
    remedy = ["| network | U-Net | GVTNet, own contexts | K^T V = 0 | training patches' mean context | "
              "(training images, own contexts) |", "|---|---:|---:|---:|---:|---:|"]
    remedy += [line for line, _ in found["seeds"]] + [row_line for _, (_, (row_line, _)) in found["tasks"].items()]
    remedy += [line for seed in sorted(found["long"]) for line, _ in
               (found["long"][seed], *([found["long demo"][seed]] if seed in found["long demo"] else []))]
    long = [values for _, (_, values) in sorted(found["long"].items())]
    paired = [(found["long"][seed][1], found["long demo"][seed][1]) for seed in sorted(found["long"])
              if seed in found["long demo"]]
    seeds = [values for _, values in found["seeds"]]
    per_task = [line for name, (lines, _) in found["tasks"].items() for line in (f"#### {name}", "", *lines, "")]
    others = {name: values for name, (_, (_, values)) in found["tasks"].items()}
    text = [
        "## Global context on new images: where the GVTNet's attention hurts", "",
        f"`python benchmarks/context_ablation.py --work {args.work} --steps-3d {args.steps_3d} --steps-2d {args.steps_2d} "
        f"--steps-projection {args.steps_projection} --seeds {args.seeds}` on {platform.node() or 'this machine'}, "
        f"{date.today()}; run after paper_claims.py and projection_vs_max.py, which rewrite the file above this section. "
        "Best checkpoints, predicted whole in memory with the package's normalization, scored by the CARE protocol on "
        "each whole image (not on crops, so the numbers differ from the tables above). Training seed 0 unless a row says "
        "otherwise; one seed measures differences between rows of one network exactly, but not how often a recipe "
        "lands there, which the seed rows show. `contexts` means each GVTO's K^T V / N "
        "(nn/attention.py's AttentionContext set to a fixed tensor).", "",
        f"### 3D denoising, demo GVTNet (batch norm), {args.steps_3d} steps", "", *table, "",
        "### Which images are harmed, and how big their contexts are", "", *amp, "",
        "### Controlled probes (test volume)", "", *control_lines, "",
        "Test Pearson r with one GVTO's own context multiplied by a factor (the others their own):", "", *sweep, "",
        "### Over training: the seed-0 recipe trained again, every checkpoint probed (Pearson r, whole volumes)", "",
        *trace, "",
        "### `predict --context-report` on the seed-0 package", "",
        "The record is taken at package time from the run's held-out sample image, here the sparse validation band:", "",
        *[f"    {line}" for line in found["report"]], "",
        f"Flagged (some GVTO beyond the recorded spread): {', '.join(_flagged(found['report'])) or 'none'}; compare the "
        "harmed images in the table of context sizes above. The record covers one image; against patches of both "
        "training volumes the test volume's contexts lie inside the spread (the probes' distances).", "",
        "### What the numbers support", "", *_reading(control, images, seeds, curves, rows, others, long, paired), "",
        "### Every task: the same ablation", "", *per_task,
        "### Candidate remedies at equal budget (test Pearson r)", "",
        "The same trained weights predicted with their own contexts (as packaged), with every K^T V set to 0 (the "
        "global term removed: no longer the paper's model), and with the training patches' mean context (a fixed "
        "context measured on training data); the last column is the training images' own-context r. U-Net: the "
        "same data, patches, batch and steps (its seed 0 for the three demo rows; the same seed as the GVTNet in the "
        "rows at twice the steps, where each seed shows the paper's CARE GVTNet, the opt-in spec "
        "`demo-gvtnet-care-paper-3d`'s network, then the unmodified demo GVTNet).", "", *remedy, "",
        *_remedy_reading(seeds + long + [demo for _, demo in paired], long, paired), ""]
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("bench-context"))
    parser.add_argument("--steps-3d", type=int, default=700)
    parser.add_argument("--steps-2d", type=int, default=600)
    parser.add_argument("--steps-projection", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=3, help="trainings of the 3D demo GVTNet (seeds 0 ..)")
    parser.add_argument("--out", type=Path, help="replace the marked section of this markdown file (docs/results.md)")
    parser.add_argument("--train-only", action="store_true", help="train (or find) the runs, measure nothing")
    parser.add_argument("--long", action="store_true", help="also train the CARE GVTNet and the U-Net at twice --steps-3d "
                        "(without it, they are reported only if their runs exist)")
    parser.add_argument("--remeasure", action="store_true", help="measure again instead of reading work/measured")
    args = parser.parse_args()
    torch.manual_seed(SEED)
    tasks = task_runs(args.work, {"3d": args.steps_3d, "2d": args.steps_2d, "projection": args.steps_projection,
                                  "seeds": args.seeds})
    if args.train_only:
        return
    if args.remeasure:
        shutil.rmtree(args.work / "measured", ignore_errors=True)
        (args.work / "trace.json").unlink(missing_ok=True)
    text = report(args, measure(args, tasks))
    print(text)
    if args.out:
        write_section(text, args.out)


if __name__ == "__main__":
    main()
