#!/usr/bin/env bash
# One prepared GPU session (issue 27): the CUDA tests and the GPU benchmarks, each step under its own time
# limit, results into $OUT. Run on a lent GPU machine from the repository root, with the wheels of
# gvtnet-zoo's dependencies that the machine's image lacks in .gpu_wheels/ (benchmarks/gpu_wheels.txt says
# how to download them here; the machine has no network; carry .gpu_wheels with the run):
#
#     bash benchmarks/gpu_session.sh            # OUT=results folder (default: gpu-out)
#
# The machine's own PyTorch (CUDA build) is used; onnxruntime there is the CPU build (onnxruntime-gpu's
# 255 MB wheel does not travel), so GPU prediction runs TorchScript on CUDA.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
log() { echo "== $(date +%T) $*" | tee -a "$OUT/session.log"; }
step() {  # step SECONDS NAME COMMAND...: run with a limit, keep going whatever it returns
  local limit=$1 name=$2; shift 2
  log "$name (limit ${limit}s)"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  log "$name exit $?"
}

python3 -m venv --system-site-packages /tmp/gvenv
/tmp/gvenv/bin/pip install -q --no-index --no-deps .gpu_wheels/*.whl >"$OUT/install.log" 2>&1
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
printf '#!/tmp/gvenv/bin/python\nimport sys\nfrom gvtnet_zoo.cli import main\nsys.exit(main())\n' >/tmp/gvenv/bin/gvtnet-zoo
chmod +x /tmp/gvenv/bin/gvtnet-zoo
PY=/tmp/gvenv/bin/python
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
$PY -c "import torch, onnxruntime; print(torch.__version__, torch.cuda.get_device_name(0), onnxruntime.get_available_providers())" \
  >>"$OUT/gpu.txt" 2>&1

step 150 cuda_tests $PY -m pytest -q -p no:cacheprovider -rs tests/models/test_cuda.py tests/train/test_cuda_training.py \
  tests/test_devices.py tests/predict/test_global_context.py tests/predict/test_streamed.py -k "cuda or CUDA"
cd benchmarks
step 120 train_throughput $PY train_throughput.py --device cuda --workers 4 --steps 20 --warmup 5 \
  --specs gvtnet-label-free,gvtnet-care-denoise,gvtnet-flywing-projection --variants fp32,bf16,bf16+cl \
  --out "../$OUT/train_throughput.md"
step 100 inference_modes $PY inference_modes.py --device cuda --sizes 32x576x528,64x512x512 \
  --runtimes whole,whole-channels-last --out "../$OUT/inference_modes.md"
step 70 predict_folder $PY predict_folder.py --device cuda --weight-formats torchscript --repeats 2 \
  --out "../$OUT/predict_folder.md"
step 60 amp_accuracy $PY amp_accuracy.py --device cuda --work /tmp/amp --steps 400 --seeds 0,1 \
  --out "../$OUT/amp_accuracy.md"
step 40 train_compile $PY train_throughput.py --device cuda --workers 4 --steps 20 --warmup 5 \
  --specs gvtnet-label-free --variants bf16,bf16+compile --out "../$OUT/train_compile.md"
cd ..
log done
