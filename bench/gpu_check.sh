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
PARTS=${ORT_PARTS:-/tmp/ort}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1

step() { echo "=== $* ($(date +%T))"; }

step machine
nvidia-smi -L; nproc; python3 --version

step "onnxruntime-gpu from its parts"
whl="$PARTS/$(cat .whl/ort.name)"
cat "$PARTS"/p* >"$whl"
echo "$(cat .whl/ort.sha)  $whl" | sha256sum -c - || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/py/*.whl "$whl" || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
# onnxruntime-gpu dlopens CUDA 13's and cuDNN 9's libraries; the image has them in pip folders.
libs=$(find /opt /usr/local /usr/lib -xdev \( -name 'libcudnn.so.9' -o -name 'libcublasLt.so.13' \
    -o -name 'libcudart.so.13' -o -name 'libcufft.so.12' -o -name 'libcurand.so.10' \
    -o -name 'libnvrtc.so.13' \) 2>/dev/null | xargs -r -n1 dirname | sort -u | paste -sd:)
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python3 -c 'import onnxruntime as o; print(o.__version__, o.__file__, o.get_available_providers())'

step "pytest -m cuda"
timeout 300 python3 -m pytest -m cuda tests/test_cuda.py -v -s -p no:cacheprovider
echo "pytest rc=$?"

if [ -z "${SKIP_WORKERS:-}" ]; then  # SKIP_WORKERS=1: the GPU checks alone
    step "--workers scaling"
    timeout 240 python3 -m bench.workers --seconds "${WORKERS_SECONDS:-4}"
    rc=$?; echo "workers rc=$rc"
    [ $rc = 0 ] || tail -n 15 bench/results/workers-*.log
fi

step "CPU vs CUDA, in process"
timeout 150 python3 -m bench.device --seconds 1
echo "device rc=$?"
step done
