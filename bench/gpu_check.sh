#!/usr/bin/env bash
# The GPU check, as one prepared script for the GPU machine (README, "GPU").
#
# That machine has CUDA 13, PyTorch and Python 3.12 but onnxruntime's CPU build and no registry,
# so what it lacks travels as wheels: .whl/py/*.whl (this project's wheel, jieba, rjieba, grpcio,
# protobuf, grpc health/reflection) and onnxruntime-gpu, which is larger than one transfer and
# arrives in parts under /tmp/ort (ORT_PARTS) over earlier calls, named and hashed in .whl/ort.*.
# It runs, in order: `pytest -m cuda`, the --workers scaling table, the CPU-vs-CUDA table.
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1

step() { echo "=== $* ($(date +%T))"; }

step machine
nvidia-smi -L; nproc; python3 --version

step "onnxruntime-gpu from its parts"
. bench/gpu_env.sh
gpu_env || exit 1
python3 -c 'import onnxruntime as o; print(o.__version__, o.__file__, o.get_available_providers())'

step "pytest -m cuda"
timeout 300 python3 -m pytest -m cuda tests/integration/test_cuda.py -v -s -p no:cacheprovider
echo "pytest rc=$?"

if [ -z "${SKIP_WORKERS:-}" ]; then  # SKIP_WORKERS=1: the GPU checks alone
    step "--workers scaling"
    timeout 240 python3 -m bench.workers --seconds "${WORKERS_SECONDS:-4}"
    rc=$?; echo "workers rc=$rc"
    [ $rc = 0 ] || tail -n 15 bench/results/workers-*.log
fi

step "CPU vs CUDA, in process"
timeout 200 python3 -m bench.device --seconds 1
echo "device rc=$?"
step done
