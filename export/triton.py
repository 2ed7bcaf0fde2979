"""A bundle as a Triton Inference Server model repository entry for the onnxruntime backend.

``REPO/<name>/config.pbtxt`` is written as text (no protobuf at export time);
``tests/integration/test_triton_export.py`` parses it with Triton's own ``model_config.proto``.
"""

from __future__ import annotations

import re
import shutil
from enum import StrEnum
from pathlib import Path

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import Bundle, load_bundle
from zh_rnn_encoder.core.contract import TensorSpec
from zh_rnn_encoder.core.errors import BundleError
from zh_rnn_encoder.core.manifest import sha256_file

CONFIG_FILE = "config.pbtxt"
VERSION = 1
MODEL_FILE = "model.onnx"  # the onnxruntime backend's default_model_filename, not our GRAPH_FILE
DEFAULT_NAME = "encoder"
# The largest batch that export's parity grid covers (docs/exporter.md).
DEFAULT_MAX_BATCH_SIZE = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DATA_TYPES = {"int64": "TYPE_INT64", "float32": "TYPE_FP32"}


class Kind(StrEnum):
    CPU = "cpu"
    GPU = "gpu"


def config_text(bundle: Bundle, name: str, kind: Kind | str, max_batch_size: int) -> str:
    """config.pbtxt for ``bundle``'s graph; I/O from the contract, the batch axis implicit."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
    # The state tensors (optional initial state, final state) are batch-second, PyTorch's
    # layout, which Triton's batcher cannot stack: left out, the graph starts from zeros.
    inputs = contract.batch_major(contract.input_specs(bundle.model))
    outputs = contract.batch_major(contract.output_specs(bundle.model))
    return "\n".join(
        [
            "# encoder-export triton, from the bundle whose bundle.json has sha256",
            f"# {bundle.digest}:",
            "# clients tokenize with that bundle's tokenizer and vocabulary (docs/triton.md).",
            f'name: "{name}"',
            'platform: "onnxruntime_onnx"',
            "# Parity with eager PyTorch was verified on batches of 1 to 64 (docs/exporter.md).",
            f"max_batch_size: {max_batch_size}",
            _tensors("input", inputs),
            _tensors("output", outputs),
            "# 0: a batch takes what queued while the instance was busy and an idle request waits",
            "# for nothing. encoder-serve measured a 1 ms wait at +5-10% throughput (within noise)",
            "# for a millisecond on every idle request (docs/performance.md); here a wait gains",
            "# less still, as only requests of one padded length batch together.",
            "dynamic_batching {",
            "  max_queue_delay_microseconds: 0",
            "}",
            "instance_group [",
            "  {",
            f"    kind: KIND_{Kind(kind).name}",
            "    count: 1",
            "  }",
            "]",
            "",
        ]
    )


def _tensors(field: str, specs: tuple[TensorSpec, ...]) -> str:
    return f"{field} [\n" + ",\n".join(_tensor(s) for s in specs) + "\n]"


def _tensor(spec: TensorSpec) -> str:
    """One entry; Triton prepends the batch axis, and a [batch] tensor travels as [batch, 1]."""
    if spec.shape[0] != contract.BATCH_AXIS:
        raise ValueError(f"{spec.name}: the first axis must be {contract.BATCH_AXIS!r}")
    dims = [-1 if isinstance(d, str) else d for d in spec.shape[1:]]
    lines = [f'    name: "{spec.name}"', f"    data_type: {_DATA_TYPES[spec.dtype]}"]
    if dims:
        lines.append(f"    dims: {_list(dims)}")
    else:
        lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
    return "  {\n" + "\n".join(lines) + "\n  }"


def _list(dims: list[int]) -> str:
    return "[ " + ", ".join(str(d) for d in dims) + " ]"


def write_repository(
    bundle_path: Path,
    out: Path,
    name: str = DEFAULT_NAME,
    kind: Kind | str = Kind.CPU,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    *,
    force: bool = False,
) -> Path:
    """Writes ``out/<name>/config.pbtxt`` and ``out/<name>/1/model.onnx``; returns ``out/<name>``.

    The bundle is loaded and checked first (BundleError lists its problems). An existing non-empty
    ``out/<name>`` is refused (FileExistsError) unless ``force``. The entry is written beside
    its destination and moved into place, so ``out/<name>`` is never half written.
    """
    _check_name(name)
    bundle = load_bundle(bundle_path)
    text = config_text(bundle, name, kind, max_batch_size)
    dest = Path(out) / name
    if not force and dest.exists() and (dest.is_file() or any(dest.iterdir())):
        raise FileExistsError(f"{dest}: exists and is not empty (--force replaces it)")
    tmp = dest.with_name(f".{name}.partial")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / str(VERSION)).mkdir(parents=True)
        _copy_graph(bundle, tmp / str(VERSION) / MODEL_FILE)
        (tmp / CONFIG_FILE).write_text(text, encoding="utf-8")
        _remove(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _check_name(name: str) -> None:
    """A model name is one directory of the repository, and Triton lists it by that name."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"model name {name!r}: letters, digits, '_', '.' and '-', starting with a letter "
            "or a digit"
        )


def _copy_graph(bundle: Bundle, dst: Path) -> None:
    """Byte for byte, then proven so: the copy's sha256 is the one bundle.json lists."""
    shutil.copyfile(bundle.graph_path, dst)
    graph = bundle.manifest.graph.file
    expected, actual = bundle.file_hashes[graph], sha256_file(dst)
    if actual != expected:
        raise BundleError(
            bundle.path,
            [
                f"{graph}: the copy's sha256 {actual[:12]}… differs from "
                f"{contract.MANIFEST_FILE}'s {expected[:12]}…: the file changed while copying"
            ],
        )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
