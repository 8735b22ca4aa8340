"""Run the original GVTNets' whole prediction path (predict.py) to make the reference fixtures of ``predict``'s tests.

    python tools/tf_predict_reference.py ORIGINAL_CHECKOUT [OUT_DIR] [--case NAME ...]

(OUT_DIR defaults to tests/tf_import/predict_fixtures.) Like tools/tf_reference.py, whose functions it imports
(``patched_copy``, ``CASES``), it copies the GPL-3.0 checkout of github.com/divelab/GVTNets to a temporary folder and
patches it there; none of its code is copied here. On top of tf_reference.py's one-line ``tf.compat.v1`` patches it
  - puts back the checkout's own ``unet/__init__.py`` (``from unet.model_fn import Model``, which predict.py needs;
    tf_reference.py empties it), and
  - drops the one line ``from unet.data.evaluate_fn import evaluate_function`` of ``unet/data/__init__.py`` (the
    evaluation helpers need pandas, scikit-learn and scikit-image APIs removed years ago; prediction uses none of them).
Then, per run, it writes the raw image as the only tiff of a folder and runs the checkout's UNMODIFIED ``predict.py``
(argparse -> ``unet.model_fn.Model(opts, conf_unet).predict()``: ``load_testing_tiff`` -> ``PercentileNormalizer`` ->
``PadAndCropResizer`` -> [``PatchPredictor``] -> ``tf.estimator.Estimator.predict`` with ``Model._model_fn`` ->
crop -> de-normalize -> ``tifffile.imsave``) as ``python predict.py FLAGS`` would, except that the worker first calls
``tf.disable_v2_behavior()`` (TF1 semantics, as in tf_reference.py) and then runs predict.py with ``runpy`` as
``__main__``. The tiff predict.py writes (``RESULT_DIR/checkpoint_1/pred_raw.tif``) is read back unchanged. The
weights are the fixture checkpoints ``tests/tf_import/fixtures/CASE/model.ckpt-1.*`` made by tf_reference.py (copied
into a temporary ``--model_dir``; ``--checkpoint_num 1``), with network_configure.py written as tf_reference.py's
CASES do (the checkout's configure file with ``first_output_filters`` 4). TF_ENABLE_ONEDNN_OPTS=0, CPU only.

Common flags of every run: ``--gpu_id -1 --tiff_dataset_dir D --num_test_pairs 1 --result_dir R --model_dir M
--checkpoint_num 1``; the task flags are those of the checkout's scripts (scripts/*/predict_*.sh):

- care (gvtnet_care.py: depth 3, so div_n = 2**2 = 4; no batch norm). raw: uint16, 11x21x27 (ZYX), reflect-padded
  by predict.py to 12x24x28 (z (0,1), y (1,2), x (0,1)). Flags ``--offset --CARE_normalize`` (predict_Planaria.sh and
  predict_Tribolium.sh) and
    whole:                      no --cropped_prediction (the scripts always crop; this is the reference for the rest)
    cropped_p8x16x16_o4x8x8:    --cropped_prediction --predict_patch_size 8 16 16 --test_batch_size 1, overlap (4,8,8).
                                predict.py's --overlap is ``type=int`` without ``nargs`` (a command line can only give
                                one int for all axes; the scripts leave it at its default (64, 64, 64)), so for this run
                                the temporary predict.py's ``default=(64, 64, 64)`` is edited to ``default=(4, 8, 8)``
                                and --overlap is not passed. Starts on the padded 12x24x28: z 0,4; y 0,8; x 0,8,12
                                (12 patches; x: the last one is moved flush with the end).
    cropped_p6x10x14_o2:        --cropped_prediction --predict_patch_size 6 10 14 --overlap 2 --test_batch_size 1;
                                the patch is rounded UP to a multiple of div_n: 8x12x16; starts z 0,4; y 0,10,12;
                                x 0,12 (12 patches; no axis divides evenly).
    cropped_script_defaults:    --cropped_prediction --predict_patch_size 128 256 256 --test_batch_size 1, overlap at
                                its default (64, 64, 64): exactly the scripts' flags. The patch is clipped to the
                                image; with overlap > patch the step is negative and every axis yields 2 tiles both at 0
                                (8 identical patches, averaged).
- flywing (gvtnet_care.py with --proj_model: ProjectionNet then the 2D UNet; div_n = 4**(depth-1) = 16 in y/x, z is
  not padded or cut). raw: uint16, 7x37x45 (ZYX) -> padded to 7x48x48 (y (5,6), x (1,2)). Flags
  ``--offset --CARE_normalize --proj_model`` (predict_Flywing.sh); whole only (the script does not crop). Output YX.
- label_free_3d (gvtnet_label-free.py: depth 4, div_n 8, batch norm in inference mode). raw: float32 (z-scored like
  the test tiffs), 13x29x35 -> padded to 16x32x40 (z (1,2), y (1,2), x (2,3)). No task flags (scripts/label-free/
  predict*.sh pass none: no normalization, no offset, whole image). The scripts' pre-processing
  (datasets/label-free/generate_npz_or_tiff.py: z-score, resize) happens before predict.py and is not part of this.

Not run: label_free_2d. The original's prediction path has no working 2D branch: a 2D tiff is read as (Y, X, 1) and
predict.py pads with ``exclude=3``, which PadAndCropResizer takes modulo ndim, i.e. axis 0: Y is left alone while X
and the CHANNEL axis are padded (1 -> 8 channels; numpy's 'reflect' of a singleton axis repeats it). ``--try-2d``
runs it with the label_free_2d checkpoint: 29x35 fails building the graph (Y 29 is not a multiple of 8: "Dimensions
must be equal, but are 16 and 15 ... decoding_block_2/Add"); 32x35 builds an 8-input-channel network and fails
restoring the 1-channel checkpoint. (PatchPredictor's 2D branch would also use ``size[1]``, the x size, for y.)

Per case it writes OUT_DIR/CASE/reference.npz with
  ``raw``      the raw image exactly as given to predict.py (natural axes, no batch/channel; uint16 or float32),
  ``whole``    what predict.py wrote for the whole image (float32; for care/flywing in the raw's units, i.e.
               de-normalized),
  ``cropped_<name>`` (care) what predict.py wrote with those cropping flags,
  ``percentiles`` (care, flywing) [p2, p99.8] of the raw as the original's PercentileNormalizer computes them (float32);
and OUT_DIR/CASE/settings.json: the checkpoint folder, the network_configure overrides and, per output, the exact
predict.py flags (and the overlap default where edited).

Note: with --cropped_prediction, PatchPredictor.after returns float64 (np.average), so the de-normalization runs in
float64 before the final float32 cast; the whole-image path de-normalizes in float32 (cropped_script_defaults differs
from whole by ~5e-8 relative for that reason only). An independent numpy re-implementation of these rules around the
bare network (tf_reference.py's graph, same checkpoint) reproduced every output here to 0 (care, label_free_3d) or
3e-7 relative (flywing).

Rerun (about a minute per case on 2 cores):

    python3.11 -m venv /work/tfvenv && /work/tfvenv/bin/pip install tensorflow-cpu==2.15.1 'numpy<2' 'tifffile<2025' scipy
    /work/tfvenv/bin/python tools/tf_predict_reference.py /path/to/GVTNets
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tf_reference import CASES, patched_copy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "tf_import" / "fixtures"

CARE_FLAGS = ["--offset", "--CARE_normalize"]
CROP = ["--cropped_prediction", "--test_batch_size", "1"]
# case -> raw shape (ZYX), raw dtype, {output name: (predict.py flags, overlap default to write into predict.py or None)}
PREDICT_CASES = {
    "care": ((11, 21, 27), "uint16", {
        "whole": (CARE_FLAGS, None),
        "cropped_p8x16x16_o4x8x8": (CARE_FLAGS + CROP + ["--predict_patch_size", "8", "16", "16"], (4, 8, 8)),
        "cropped_p6x10x14_o2": (CARE_FLAGS + CROP + ["--predict_patch_size", "6", "10", "14", "--overlap", "2"], None),
        "cropped_script_defaults": (CARE_FLAGS + CROP + ["--predict_patch_size", "128", "256", "256"], None),
    }),
    "flywing": ((7, 37, 45), "uint16", {"whole": (CARE_FLAGS + ["--proj_model"], None)}),
    "label_free_3d": ((13, 29, 35), "float32", {"whole": ([], None)}),
}
OVERLAP_DEFAULT = "default=(64, 64, 64)"

WORKER = r'''
import json, runpy, sys
import tensorflow.compat.v1 as tf
tf.disable_v2_behavior()
flags, raw_path = json.loads(sys.argv[1])
if raw_path:  # the original's own percentile normalizer on the raw image, for the record
    import numpy as np, tifffile
    from unet.data.pred_utils import PercentileNormalizer
    normalizer = PercentileNormalizer()
    normalizer.before(np.expand_dims(tifffile.imread(raw_path), -1), "ZYXC")
    print("PERCENTILES", json.dumps([float(normalizer.mi.ravel()[0]), float(normalizer.ma.ravel()[0])]))
    sys.exit(0)
sys.argv = ["predict.py"] + flags
runpy.run_path("predict.py", run_name="__main__")
'''


def make_raw(shape: tuple, dtype: str, rng: np.random.Generator) -> np.ndarray:
    if dtype == "uint16":  # camera-like counts: offset + gamma-distributed signal
        return np.round(100 + rng.gamma(2.0, 300.0, shape)).clip(0, 65535).astype(np.uint16)
    # z-scored exactly (float64 mean and std, as datasets/label-free/transforms.py), like the label-free test tiffs:
    # a package that z-scores its input again then sees the same image
    image = rng.standard_normal(shape)
    return ((image - image.mean()) / image.std()).astype(np.float32)


def run_worker(work: Path, flags: list, raw_path: str = "") -> str:
    env = {"PYTHONPATH": str(work), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "TF_ENABLE_ONEDNN_OPTS": "0", "PATH": os.environ.get("PATH", "")}
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps([flags, raw_path])], cwd=work, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"predict.py {' '.join(flags)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return done.stdout


def prepare(checkout: Path, work: Path, case: str) -> str:
    """The patched checkout in ``work``; returns its predict.py text (the base for per-run overlap edits)."""
    configure, overrides = CASES[case][:2]
    patched_copy(checkout, work, configure, overrides)
    shutil.copy(checkout / "unet" / "__init__.py", work / "unet" / "__init__.py")
    data_init = work / "unet" / "data" / "__init__.py"
    text, n = re.subn(r"^from unet\.data\.evaluate_fn import evaluate_function\n", "", data_init.read_text(),
                      flags=re.M)
    assert n == 1, "unet/data/__init__.py changed upstream"
    data_init.write_text(text)
    predict = (work / "predict.py").read_text()
    assert predict.count(OVERLAP_DEFAULT) == 1, "predict.py changed upstream"
    return predict


def run_case(checkout: Path, out: Path, case: str, seed: int) -> None:
    shape, dtype, runs = PREDICT_CASES[case]
    rng = np.random.default_rng(seed)
    raw = make_raw(shape, dtype, rng)
    results, settings = {"raw": raw}, {
        "checkpoint": f"tests/tf_import/fixtures/{case}/model.ckpt-1",
        "network_configure": {"file": CASES[case][0], "overrides": CASES[case][1]},
        "common_flags": ["--gpu_id", "-1", "--tiff_dataset_dir", "DATA", "--num_test_pairs", "1",
                         "--result_dir", "RESULT", "--model_dir", "MODEL", "--checkpoint_num", "1"],
        "outputs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        work = tmp / "GVTNets"
        predict = prepare(checkout, work, case)
        data, model = tmp / "data", tmp / "model"
        data.mkdir()
        model.mkdir()
        tifffile.imwrite(data / "raw.tif", raw)
        for path in (FIXTURES / case).glob("model.ckpt-1.*"):
            shutil.copy(path, model / path.name)
        if "--CARE_normalize" in runs["whole"][0]:
            line = [s for s in run_worker(work, [], str(data / "raw.tif")).splitlines() if s.startswith("PERCENTILES")]
            results["percentiles"] = np.array(json.loads(line[0].split(" ", 1)[1]), np.float32)
        for name, (flags, overlap_default) in runs.items():
            text = predict if overlap_default is None else predict.replace(
                OVERLAP_DEFAULT, f"default={tuple(overlap_default)}")
            (work / "predict.py").write_text(text)
            result = tmp / f"result_{name}"
            common = ["--gpu_id", "-1", "--tiff_dataset_dir", str(data), "--num_test_pairs", "1",
                      "--result_dir", str(result), "--model_dir", str(model), "--checkpoint_num", "1"]
            run_worker(work, common + flags)
            results[name] = tifffile.imread(result / "checkpoint_1" / "pred_raw.tif")
            settings["outputs"][name] = {"flags": flags}
            if overlap_default is not None:
                settings["outputs"][name]["overlap_default"] = list(overlap_default)
                settings["outputs"][name]["note"] = ("predict.py's --overlap takes one int; this run edited its "
                                                     "default (64, 64, 64) to this per-axis tuple")
            print(case, name, results[name].shape, results[name].dtype, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "reference.npz", **results)
    (out / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")


def try_2d(checkout: Path) -> None:
    """Runs the original's predict path on 2D images with the label_free_2d checkpoint; reports how it fails."""
    for shape in ((29, 35), (32, 35)):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            work = tmp / "GVTNets"
            prepare(checkout, work, "label_free_2d")
            (tmp / "data").mkdir()
            tifffile.imwrite(tmp / "data" / "raw.tif", np.random.default_rng(0).standard_normal(shape, np.float32))
            shutil.copytree(FIXTURES / "label_free_2d", tmp / "model")
            try:
                run_worker(work, ["--gpu_id", "-1", "--tiff_dataset_dir", str(tmp / "data"), "--num_test_pairs", "1",
                                  "--result_dir", str(tmp / "result"), "--model_dir", str(tmp / "model"),
                                  "--checkpoint_num", "1"])
                written = tifffile.imread(tmp / "result" / "checkpoint_1" / "pred_raw.tif")
                print(f"2D {shape}: prediction unexpectedly ran, wrote {written.shape}")
            except RuntimeError as error:
                lines = [s for s in str(error).splitlines() if "Error" in s]
                print(f"2D {shape}: failed as expected: " + (lines[-1] if lines else str(error)[-500:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of divelab/GVTNets")
    parser.add_argument("out", type=Path, nargs="?", default=ROOT / "tests" / "tf_import" / "predict_fixtures")
    parser.add_argument("--case", action="append", choices=sorted(PREDICT_CASES), help="only these (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--try-2d", action="store_true", help="only run the (failing) 2D label-free prediction")
    args = parser.parse_args()
    if args.try_2d:
        try_2d(args.checkout)
        return
    for name in args.case or sorted(PREDICT_CASES):
        run_case(args.checkout, args.out / name, name, args.seed)


if __name__ == "__main__":
    main()
