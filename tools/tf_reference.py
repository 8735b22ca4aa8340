"""Run the original GVTNets (TensorFlow 1 code) to make the reference fixtures of ``import-tf``'s tests.

    python tools/tf_reference.py ORIGINAL_CHECKOUT OUT_DIR [--case NAME ...]

ORIGINAL_CHECKOUT is a checkout of github.com/divelab/GVTNets (tested at commit 66e1007); none of
its code is copied here (it is GPL-3.0): this script copies the checkout to a temporary folder,
applies the one-line patches TF1 code needs under ``tf.compat.v1`` (``import tensorflow as tf`` ->
``import tensorflow.compat.v1 as tf``; ``from tensorflow.layers import max_pooling3d`` ->
``tf.layers.max_pooling3d``; an empty ``unet/__init__.py``, whose imports of the training helpers need
libraries the network does not), writes ``network_configure.py`` from the checkout's own configuration
for the task with a few values overridden, and runs the original's ``UNet`` / ``ProjectionNet`` and
``get_loss``. Needs tensorflow-cpu 2.15 in its own environment (not gvtnet-zoo's):

    python3.11 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.15.1 'numpy<2' 'tifffile<2025'
    /tmp/tfvenv/bin/python tools/tf_reference.py /path/to/GVTNets tests/tf_import/fixtures

For each case it writes into OUT_DIR/CASE/:
- ``model.ckpt-1.{index,data-00000-of-00001}``: every variable randomized (kernels, biases, batch-norm
  gamma/beta/moving statistics), then one Adam step (beta1 0.5, as the original) so that the
  checkpoint holds the same kinds of variables as the published ones (Adam slots, beta1_power,
  beta2_power, global_step);
- ``reference.npz``: ``input`` (B, C, *S), ``eval`` (the output in inference mode, (B, 1, *S_out)) and,
  where batch norm is on, ``train`` (the output with batch statistics), both from the saved weights;
- ``variables.json``: every variable of the checkpoint, name -> shape.
And OUT_DIR/full_size_variables.json: for each task at the published width, the variable list of
the graph the original builds with its optimizer (what the published checkpoints hold).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# case -> (the checkout's configuration file, overrides of conf_unet, projection?, loss type, probabilistic?, offset?,
#          input shape (B, C, *S))
CASES = {
    "care": ("gvtnet_care.py", {"first_output_filters": 4}, False, "MAE", True, True, (2, 1, 8, 16, 16)),
    "flywing": ("gvtnet_care.py", {"first_output_filters": 4}, True, "MAE", False, True, (2, 1, 6, 32, 32)),
    "label_free_3d": ("gvtnet_label-free.py", {"first_output_filters": 4}, False, "MSE", False, False,
                      (2, 1, 8, 16, 16)),
    "label_free_2d": ("gvtnet_label-free.py", {"first_output_filters": 4, "dimension": "'2D'"}, False, "MSE", False,
                      False, (2, 1, 32, 32)),
}
FULL_SIZE = {
    "care": ("gvtnet_care.py", {}, False, "MAE", True, True, (1, 1, 16, 32, 32)),
    "flywing": ("gvtnet_care.py", {}, True, "MAE", False, True, (1, 1, 4, 32, 32)),
    "label_free": ("gvtnet_label-free.py", {}, False, "MSE", False, False, (1, 1, 16, 32, 32)),
}


def patched_copy(checkout: Path, into: Path, configure: str, overrides: dict) -> None:
    """The checkout in ``into``, runnable under tf.compat.v1, with network_configure.py for the case."""
    shutil.copytree(checkout, into, ignore=shutil.ignore_patterns(".git", "save_dir", "doc", "datasets"))
    for path in into.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"^import tensorflow as tf$", "import tensorflow.compat.v1 as tf", text, flags=re.M)
        text = text.replace("from tensorflow.layers import max_pooling3d\n", "")
        text = re.sub(r"(?<![\w.])max_pooling3d\(", "tf.layers.max_pooling3d(", text)
        path.write_text(text)
    # unet/__init__.py imports the training and evaluation helpers (scikit-learn, old scikit-image APIs); the
    # network alone needs none of them
    (into / "unet" / "__init__.py").write_text("")
    lines = (checkout / "network_configures" / configure).read_text().splitlines()
    lines = ["import tensorflow.compat.v1 as tf" if line == "import tensorflow as tf" else line for line in lines]
    lines += [f"conf_unet[{key!r}] = {value}" for key, value in overrides.items()]
    (into / "network_configure.py").write_text("\n".join(lines) + "\n")


WORKER = r'''
import json, sys
import numpy as np
import tensorflow.compat.v1 as tf
tf.disable_v2_behavior()
tf.disable_eager_execution()
from network_configure import conf_basic_ops, conf_unet
from unet.network import UNet, ProjectionNet, get_loss

projection, loss_type, probabilistic, offset, shape, out, seed, run = json.loads(sys.argv[1])
rng = np.random.default_rng(seed)
channels_last = [shape[0], *shape[2:], shape[1]]
x_value = rng.standard_normal(channels_last).astype(np.float32)


def network(x, training):
    conf = dict(conf_unet)
    features = x
    if projection:
        features = ProjectionNet(conf)(x, training)
        conf["dimension"] = "2D"
    outputs, penult = UNet(conf)(features, training)
    outputs = features + outputs if offset else outputs
    return outputs, penult, conf["dimension"]


def build(training):
    tf.reset_default_graph()
    x = tf.placeholder(tf.float32, [None] * (len(channels_last) - 1) + [1])
    outputs, penult, dimension = network(x, training)
    return x, outputs, penult, dimension


x, outputs, penult, dimension = build(True)
labels = tf.placeholder(tf.float32, outputs.shape)
loss = get_loss(labels, outputs, penult, loss_type, probabilistic, offset, dimension)
step = tf.train.get_or_create_global_step()
optimizer = tf.train.AdamOptimizer(learning_rate=1e-4, beta1=0.5, beta2=0.999)
with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
    train_op = optimizer.minimize(loss, step)
variables = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
if not run:
    json.dump(variables, open(out + "/variables.json", "w"), indent=1, sort_keys=True)
    sys.exit(0)

with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    for v in tf.global_variables():
        name, shape_v = v.op.name, v.shape.as_list()
        if "Adam" in name or name in ("beta1_power", "beta2_power", "global_step"):
            continue
        if name.endswith("kernel"):
            fan = float(np.prod(shape_v[:-2]) * (shape_v[-2] + shape_v[-1]))
            value = rng.standard_normal(shape_v) * np.sqrt(2.0 / fan)  # Glorot-normal scale
        elif name.endswith(("gamma", "moving_variance")):
            value = rng.uniform(0.5, 1.5, shape_v)
        else:  # biases, beta, moving_mean
            value = rng.standard_normal(shape_v) * 0.1
        v.load(value.astype(np.float32), sess)
    target = rng.standard_normal(sess.run(tf.shape(outputs), {x: x_value})).astype(np.float32)
    sess.run(train_op, {x: x_value, labels: target})
    tf.train.Saver().save(sess, out + "/model.ckpt", global_step=step)
json.dump(variables, open(out + "/variables.json", "w"), indent=1, sort_keys=True)

results = {"input": np.moveaxis(x_value, -1, 1)}
for mode, training in (("eval", False), ("train", True)):
    if mode == "train" and not conf_basic_ops["use_batch_norm"]:
        continue  # without batch norm both modes compute the same
    x, outputs, _, _ = build(training)
    with tf.Session() as sess:
        tf.train.Saver([v for v in tf.global_variables()]).restore(sess, out + "/model.ckpt-1")
        results[mode] = np.moveaxis(sess.run(outputs, {x: x_value}), -1, 1)
np.savez_compressed(out + "/reference.npz", **results)
print("wrote", out, {k: v.shape for k, v in results.items()})
'''


def run_case(checkout: Path, out: Path, case: tuple, seed: int, run: bool) -> None:
    configure, overrides, projection, loss_type, probabilistic, offset, shape = case
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "GVTNets"
        patched_copy(checkout, work, configure, overrides)
        out.mkdir(parents=True, exist_ok=True)
        args = json.dumps([projection, loss_type, probabilistic, offset, list(shape), str(out.resolve()), seed, run])
        subprocess.run([sys.executable, "-c", WORKER, args], cwd=work, check=True,
                       env={"PYTHONPATH": str(work), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of divelab/GVTNets")
    parser.add_argument("out", type=Path)
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.case or sorted(CASES):
        run_case(args.checkout, args.out / name, CASES[name], args.seed, run=True)
        (args.out / name / "checkpoint").unlink(missing_ok=True)  # TF's bookkeeping file, not needed
    full = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in FULL_SIZE.items():
            run_case(args.checkout, Path(tmp) / name, case, args.seed, run=False)
            full[name] = json.loads((Path(tmp) / name / "variables.json").read_text())
    (args.out / "full_size_variables.json").write_text(json.dumps(full, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
