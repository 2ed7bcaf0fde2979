#!/usr/bin/env bash
# bench.device_parts on the GPU machine: the install steps of bench/gpu_check.sh (onnxruntime-gpu
# joined from its parts under /tmp/ort, .whl/py into /tmp/site, CUDA libraries), then the module.
set -u
OUT=${OUT:-/tmp/gpu-parts}
PARTS=${ORT_PARTS:-/tmp/ort}
mkdir -p "$OUT"
nvidia-smi -L; nproc; python3 --version
whl="$PARTS/$(cat .whl/ort.name)"
cat "$PARTS"/p* >"$whl"
echo "$(cat .whl/ort.sha)  $whl" | sha256sum -c - || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/py/*.whl "$whl" || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
libs=$(find /opt /usr/local /usr/lib -xdev \( -name 'libcudnn.so.9' -o -name 'libcublasLt.so.13' \
    -o -name 'libcudart.so.13' -o -name 'libcufft.so.12' -o -name 'libcurand.so.10' \
    -o -name 'libnvrtc.so.13' \) 2>/dev/null | xargs -r -n1 dirname | sort -u | paste -sd:)
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
set -o pipefail
timeout "${PARTS_TIMEOUT:-300}" python3 -m bench.device_parts --seconds "${SECONDS_PER:-1}" "$@" \
    2>&1 | tee "$OUT/parts.log"
