#!/usr/bin/env bash
# bench.device_parts on the GPU machine: the install steps of bench/gpu_check.sh (onnxruntime-gpu
# joined from its parts under /tmp/ort, .whl/py into /tmp/site, CUDA libraries), then the module.
set -u
OUT=${OUT:-/tmp/gpu-parts}
mkdir -p "$OUT"
nvidia-smi -L; nproc; python3 --version
. bench/gpu_env.sh
gpu_env || exit 1
set -o pipefail
timeout "${PARTS_TIMEOUT:-300}" python3 -m bench.device_parts --seconds "${SECONDS_PER:-1}" "$@" \
    2>&1 | tee "$OUT/parts.log"
