"""Open Inference Protocol v2 messages <-> domain objects: each model this server serves, by its
name, and its one version: the hex sha256 of its bundle.json.

The model takes one input, TEXT (BYTES, shape [N] or [N, 1]), and offers four outputs. Request
parameters choose the encoding options; docs/protocols.md lists every field and what we do with it.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from zh_rnn_encoder.core.errors import InvalidInput
from zh_rnn_encoder.core.manifest import to_json
from zh_rnn_encoder.proto.inference import open_inference_pb2 as pb
from zh_rnn_encoder.runtime.admission import ResponseShape, ResponseSize
from zh_rnn_encoder.runtime.models import ServedModel
from zh_rnn_encoder.runtime.types import EncodeOptions, EncodeResult
from zh_rnn_encoder.transport.options import OPTIONS

PLATFORM = "jieba_onnxruntime"
TEXT = "TEXT"
SENTENCE_VECTOR, TOKEN_VECTORS, TOKEN_LENGTHS, IDS = (
    "sentence_vector",
    "token_vectors",
    "token_lengths",
    "ids",
)
OUTPUTS = (SENTENCE_VECTOR, TOKEN_VECTORS, TOKEN_LENGTHS, IDS)
_DATATYPE = {SENTENCE_VECTOR: "FP32", TOKEN_VECTORS: "FP32", TOKEN_LENGTHS: "INT64", IDS: "INT64"}
_PARAM_FIELD = {str: "string_param", bool: "bool_param", int: "int64_param"}
# parameter (an EncodeOptions field) -> the InferParameter field it must use
PARAMETERS = {name: _PARAM_FIELD[t] for name, t in OPTIONS.items()}
# Scheduling hints of Triton's clients that mean nothing here; accepted and ignored.
IGNORED_PARAMETERS = frozenset({"priority", "timeout"})
_LEN = struct.Struct("<I")
_ITEM_BYTES = {name: 4 if t == "FP32" else 8 for name, t in _DATATYPE.items()}
# An output in a response, besides its values: its InferOutputTensor (name, datatype, a shape of
# up to 3 dimensions) and the framing of its raw contents (<= 64).
OUTPUT_BYTES = 96
# A response's own fields, besides the model's name and version and the id it echoes: framing.
RESPONSE_BYTES = 32


def texts_of(r: pb.ModelInferRequest) -> list[str]:
    """The texts of the one TEXT input, from raw_input_contents or contents.bytes_contents."""
    if len(r.inputs) != 1 or r.inputs[0].name != TEXT:
        got = [i.name for i in r.inputs]
        raise InvalidInput(f"inputs: expected exactly one input named {TEXT!r}, got {got}")
    t = r.inputs[0]
    if t.datatype != "BYTES":
        raise InvalidInput(f"inputs[{TEXT}].datatype: expected BYTES, got {t.datatype!r}")
    shape = list(t.shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
        raise InvalidInput(f"inputs[{TEXT}].shape: expected [N] or [N, 1], got {shape}")
    if r.raw_input_contents:
        if len(r.raw_input_contents) != 1 or t.HasField("contents"):
            raise InvalidInput(
                "raw_input_contents: expected one entry for the one input, and no "
                f"inputs[{TEXT}].contents beside it; got {len(r.raw_input_contents)} entries"
            )
        items = _split_raw(r.raw_input_contents[0], shape[0])
    else:
        items = list(t.contents.bytes_contents)
    if len(items) != shape[0]:
        raise InvalidInput(
            f"inputs[{TEXT}]: shape {shape} says {shape[0]} elements, the data holds {len(items)}"
        )
    texts = []
    for i, b in enumerate(items):
        try:
            texts.append(b.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise InvalidInput(f"inputs[{TEXT}][{i}]: not valid UTF-8 ({e.reason})") from None
    return texts


def _split_raw(raw: bytes, expected: int) -> list[bytes]:
    """BYTES elements in raw form: each a little-endian uint32 length, then its bytes."""
    items: list[bytes] = []
    at, n = 0, len(raw)
    while at < n:
        if at + 4 > n or len(items) >= expected:
            break
        (size,) = _LEN.unpack_from(raw, at)
        at += 4
        if at + size > n:
            raise InvalidInput(
                f"raw_input_contents[0]: element {len(items)} claims {size} bytes, {n - at} remain"
            )
        items.append(raw[at : at + size])
        at += size
    if at != n:
        raise InvalidInput(
            f"raw_input_contents[0]: {n - at} bytes left after {len(items)} elements "
            "(each element is a little-endian uint32 length, then its bytes)"
        )
    return items


def requested_outputs(r: pb.ModelInferRequest) -> list[str]:
    """The outputs asked for, in the request's order; every output when none is named."""
    names = [o.name for o in r.outputs] or list(OUTPUTS)
    for o in r.outputs:
        if o.name not in OUTPUTS:
            raise InvalidInput(f"outputs: unknown output {o.name!r}; this model has {OUTPUTS}")
        if "classification" in o.parameters:
            raise InvalidInput(f"outputs[{o.name}].parameters.classification: not supported")
    if len(set(names)) != len(names):
        raise InvalidInput(f"outputs: each output may be named once, got {names}")
    return names


def options_of(r: pb.ModelInferRequest, outputs: list[str]) -> EncodeOptions:
    """Parameters absent: the model's defaults (pooling and normalize as its bundle declares)."""
    kw: dict[str, Any] = {"token_vectors": TOKEN_VECTORS in outputs}  # EncodeOptions parses
    for name, p in r.parameters.items():
        if name in IGNORED_PARAMETERS:
            continue
        if name not in PARAMETERS:
            raise InvalidInput(
                f"parameters.{name}: unknown; accepted: {sorted(PARAMETERS)} (and "
                f"{sorted(IGNORED_PARAMETERS)}, ignored)"
            )
        field = PARAMETERS[name]
        if p.WhichOneof("parameter_choice") != field:
            raise InvalidInput(
                f"parameters.{name}: expected {field}, got {p.WhichOneof('parameter_choice')}"
            )
        kw[name] = getattr(p, field)
    return EncodeOptions(**kw)


def response_size(outputs: list[str], name: str, version: str, request_id: str) -> ResponseSize:
    """The upper bound of a ModelInferResponse's bytes with these outputs: padded to the longest
    text, ``token_vectors`` and ``ids`` can be far larger than the tokens they hold."""
    fixed = RESPONSE_BYTES + sum(len(s.encode()) for s in (name, version, request_id))

    def size(shape: ResponseShape) -> int:
        n, width = len(shape.tokens), max(shape.tokens, default=0)
        values = {
            SENTENCE_VECTOR: n * shape.dim,
            TOKEN_VECTORS: n * width * shape.dim,
            TOKEN_LENGTHS: n,
            IDS: n * width,
        }
        return fixed + sum(OUTPUT_BYTES + values[o] * _ITEM_BYTES[o] for o in outputs)

    return size


def infer_response(
    res: EncodeResult,
    outputs: list[str],
    name: str,
    version: str,
    request_id: str,
    pad_id: int,
) -> pb.ModelInferResponse:
    """Every output in raw_output_contents (the form stock tritonclient decodes)."""
    enc = res.encodings
    n = len(enc)
    lengths = np.array([len(e.ids) for e in enc], dtype="<i8")
    width = int(lengths.max()) if n else 0
    dim = enc[0].vector.shape[0] if n else 0
    r = pb.ModelInferResponse(model_name=name, model_version=version, id=request_id)
    for output in outputs:
        if output == SENTENCE_VECTOR:
            arr = np.stack([e.vector for e in enc]) if n else np.zeros((0, dim))
        elif output == TOKEN_LENGTHS:
            arr = lengths
        elif output == IDS:
            arr = np.full((n, width), pad_id, dtype="<i8")
            for i, e in enumerate(enc):
                arr[i, : len(e.ids)] = e.ids
        else:  # TOKEN_VECTORS, zeros past each text's length
            arr = np.zeros((n, width, dim), dtype="<f4")
            for i, e in enumerate(enc):
                arr[i, : len(e.ids)] = e.token_vectors
        arr = np.ascontiguousarray(arr, dtype="<f4" if _DATATYPE[output] == "FP32" else "<i8")
        r.outputs.add(name=output, datatype=_DATATYPE[output], shape=arr.shape)
        r.raw_output_contents.append(arr.tobytes())
    return r


def model_metadata(model: ServedModel) -> pb.ModelMetadataResponse:
    info = model.encoder.info
    d = info.model.output_dim
    tensor = pb.ModelMetadataResponse.TensorMetadata
    m = info.model
    card = {} if info.card is None else {"model_card": _compact(to_json(info.card))}
    q = info.quantization
    card |= {} if q is None else {"quantization": _compact(to_json(q))}
    return pb.ModelMetadataResponse(
        name=model.name,
        versions=[model.version],
        platform=PLATFORM,
        inputs=[tensor(name=TEXT, datatype="BYTES", shape=[-1])],
        outputs=[
            tensor(name=SENTENCE_VECTOR, datatype="FP32", shape=[-1, d]),
            tensor(name=TOKEN_VECTORS, datatype="FP32", shape=[-1, -1, d]),
            tensor(name=TOKEN_LENGTHS, datatype="INT64", shape=[-1]),
            tensor(name=IDS, datatype="INT64", shape=[-1, -1]),
        ],
        properties={
            "cell": m.cell.value,
            "num_layers": str(m.num_layers),
            "bidirectional": str(m.bidirectional).lower(),
            "output_dim": str(d),
            "bundle_sha256": info.bundle_sha256,
            "tokenizer": f"jieba {info.tokenizer.jieba_version}",
            "parameters": ",".join(PARAMETERS),
            "default_pooling": info.defaults.pooling.value,
            "default_normalize": str(info.defaults.normalize).lower(),
            **card,
        },
    )


def _compact(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
