# Sourced by bench/gpu_check.sh and bench/gpu_parts.sh on the GPU machine: onnxruntime-gpu joined
# from its parts under $ORT_PARTS (default /tmp/ort) and checked against .whl/ort.sha, the carried
# wheels (.whl/py) installed into /tmp/site, and CUDA 13's and cuDNN 9's libraries, which the image
# keeps in pip folders, put on LD_LIBRARY_PATH. Returns non-zero when the wheel or install fails.
gpu_env() {
    local parts=${ORT_PARTS:-/tmp/ort} whl libs
    whl="$parts/$(cat .whl/ort.name)"
    cat "$parts"/p* >"$whl"
    echo "$(cat .whl/ort.sha)  $whl" | sha256sum -c - || return 1
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/py/*.whl "$whl" || return 1
    export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
    libs=$(find /opt /usr/local /usr/lib -xdev \( -name 'libcudnn.so.9' -o -name 'libcublasLt.so.13' \
        -o -name 'libcudart.so.13' -o -name 'libcufft.so.12' -o -name 'libcurand.so.10' \
        -o -name 'libnvrtc.so.13' \) 2>/dev/null | xargs -r -n1 dirname | sort -u | paste -sd:)
    export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}
