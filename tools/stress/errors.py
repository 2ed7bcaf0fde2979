"""Error probes: what a client can cause gets a clear status and leaves no ERROR in the log. Every
JSON field of /v1/embeddings and every Open Inference parameter with a value of every wrong type;
a response over max_message_bytes on every method of every protocol (cancelled streams:
cancellation.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import numpy as np

from tools.stress.common import (
    LONG,
    Result,
    Scale,
    Server,
    channel,
    clean_log,
    log_errors,
    reference_vector,
)
from zh_rnn_encoder.client import encode_request
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2_grpc as pb_grpc
from zh_rnn_encoder.proto.inference import open_inference_pb2 as oip_pb
from zh_rnn_encoder.proto.inference import open_inference_pb2_grpc as oip_grpc

# One value of every JSON type, and the edge values of each: the matrix.
JSON_VALUES: list[object] = [[], {}, ["x"], 1.5, True, None, "", -1]
# Every JSON field /v1/embeddings takes, written here: a field added to convert.py's ACCEPTED
# without a probe breaks the bound "every field probed", not passes unseen.
JSON_FIELDS = ("input", "model", "encoding_format", "dimensions", "user",
               "pooling", "normalize", "truncation", "max_tokens")  # fmt: skip
# The values of JSON_VALUES of each field's type (or null, which is absent); any other is a
# wrong type, which must be refused: taken silently (encoding_format [] as float) is a failure.
WELL_TYPED: dict[str, list[object]] = {
    "input": [[], ["x"], ""], "model": [""], "encoding_format": [None, ""],
    "dimensions": [None, -1], "user": [None, ""], "pooling": [None, ""],
    "normalize": [True, None], "truncation": [None, ""], "max_tokens": [None, -1],
}  # fmt: skip
# Every parameter ModelInfer reads, the ones it ignores, and one it does not know.
OIP_PARAMETERS = ("pooling", "normalize", "truncation", "max_tokens", "priority", "timeout", "x")
OIP_VALUES: list[tuple[str, object]] = [
    ("bool_param", True), ("int64_param", -1), ("int64_param", 0), ("string_param", ""),
    ("string_param", "x"), ("double_param", 1.5), ("uint64_param", 1), ("", None),
    ("string_param", "好" * 10_000),  # echoed in the message: 90 KB of trailers, uncut
]  # fmt: skip
# The server's limit in the oversized-response probe: small, so that each case is cheap.
MESSAGE_BYTES = 256 << 10


# --- every JSON field and parameter, every wrong type -----------------------------------------


def probe_json_fields(bundle: Path, cache: Path, s: Scale) -> Result:
    """Every /v1/embeddings field x {[], {}, ["x"], 1.5, true, null, "", -1}, in the body and
    as a text of ``input``, and each as the whole body; every ModelInfer parameter with every
    InferParameter type: 2xx or 4xx only, every 4xx naming its field, nothing in the log."""
    from zh_rnn_encoder.transport.openai.convert import ACCEPTED

    srv = Server(bundle, cache, http=True)
    try:
        statuses: dict[str, int] = {}
        unnamed: list[str] = []
        taken: list[str] = []  # a wrong type answered 200
        codes: dict[str, int] = {}

        async def go() -> None:
            import aiohttp

            async with aiohttp.ClientSession() as session:
                for body, field in _json_cases():
                    data = json.dumps(body, ensure_ascii=False).encode()
                    async with session.post(srv.http + "/v1/embeddings", data=data) as r:
                        out = await r.read()
                        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
                    if r.status >= 400 and field and _param(out) != field:
                        unnamed.append(f"{field}={data[:80]!r}: {out[:160]!r}")
                    if r.status == 200 and not _well_typed(body, field):
                        taken.append(data[:80].decode(errors="replace"))
            async with channel(srv.target) as ch:
                stub = oip_grpc.GRPCInferenceServiceStub(ch)
                for name, (choice, value) in _oip_cases():
                    req = infer_outputs(["你好"])
                    p = req.parameters[name]
                    if choice:
                        setattr(p, choice, value)
                    try:
                        await stub.ModelInfer(req, timeout=10)
                        code = "OK"
                    except grpc.aio.AioRpcError as e:
                        code = e.code().name
                        if name not in (e.details() or ""):
                            unnamed.append(f"parameters.{name}={choice}: {e.details()}")
                    codes[code] = codes.get(code, 0) + 1

        before = reference_vector(srv.target)
        asyncio.run(go())
        same = bool(np.array_equal(before, reference_vector(srv.target)))
        m = {
            "http_cases": sum(statuses.values()),
            "http_statuses": statuses,
            "oip_cases": sum(codes.values()),
            "oip_codes": codes,
            "not_naming_field": unnamed[:5],
            "wrong_type_taken": taken,
            "fields_not_probed": sorted(set(ACCEPTED) - set(JSON_FIELDS)),
            "same_vector_after": same,
            **log_errors(srv.proc.log),
        }
        bad_http = sum(n for k, n in statuses.items() if not k.startswith(("2", "4")))
        bad_oip = sum(n for k, n in codes.items() if k not in ("OK", "INVALID_ARGUMENT"))
        bounds = {
            "HTTP 2xx/4xx only": (bad_http, "==", 0),
            "OIP OK/INVALID_ARGUMENT only": (bad_oip, "==", 0),
            "every refusal names its field": (len(unnamed), "==", 0),
            "no wrong type taken": (len(taken), "==", 0),
            "every field probed": (len(m["fields_not_probed"]), "==", 0),
            "same vector after": (same, "==", True),
            **clean_log(m),
        }
        return Result("json fields", m, bounds)
    finally:
        srv.stop()


def _json_cases() -> list[tuple[object, str]]:
    """(body, the field a refusal must name: OpenAI's ``param``; "" for a body not an object)."""
    base = {"model": "encoder", "input": ["你好"]}
    cases: list[tuple[object, str]] = [(v, "") for v in JSON_VALUES]
    for field in JSON_FIELDS:
        cases += [({**base, field: v}, field) for v in JSON_VALUES]
    cases += [({**base, "input": ["你好", v]}, "input") for v in JSON_VALUES]
    return cases


def _oip_cases() -> list[tuple[str, tuple[str, object]]]:
    return [(name, v) for name in OIP_PARAMETERS for v in OIP_VALUES]


def _well_typed(body: object, field: str) -> bool:
    if not field or not isinstance(body, dict):
        return False
    value = body[field]
    if field == "input" and isinstance(value, list) and len(value) == 2:  # ["你好", v]
        return isinstance(value[1], str)
    return any(value == v and type(value) is type(v) for v in WELL_TYPED[field])


def _param(body: bytes) -> str | None:
    try:
        return json.loads(body)["error"]["param"]
    except (ValueError, KeyError, TypeError):
        return None


def infer_outputs(
    texts: list[str], *outputs: str, request_id: str = ""
) -> oip_pb.ModelInferRequest:
    r = oip_pb.ModelInferRequest(model_name="encoder", id=request_id)
    r.inputs.add(name="TEXT", datatype="BYTES", shape=[len(texts)])
    r.inputs[0].contents.bytes_contents.extend(t.encode() for t in texts)
    for o in outputs:
        r.outputs.add(name=o)
    return r


# --- responses over max_message_bytes ---------------------------------------------------------


def probe_oversized_responses(bundle: Path, cache: Path, s: Scale) -> Result:
    """A legal request whose response would exceed max_message_bytes, on every method that
    answers with the request's data (tokens, padded outputs, an echoed id): INVALID_ARGUMENT
    (HTTP 413) naming max_message_bytes, never gRPC's RESOURCE_EXHAUSTED "Sent message larger
    than max", nothing in the log; the server answers right afterwards."""
    limit = MESSAGE_BYTES
    srv = Server(bundle, cache, "--max-message-bytes", str(limit),
                 "--max-texts-per-request", "4096", http=True)  # fmt: skip
    try:
        before = reference_vector(srv.target)
        got = asyncio.run(_oversized(srv, limit))
        same = bool(np.array_equal(before, reference_vector(srv.target)))
        wrong = {k: v for k, v in got.items() if not _names_limit(v)}
        m = {"cases": got, "wrong": wrong, "same_vector_after": same, **log_errors(srv.proc.log)}
        bounds = {
            "INVALID_ARGUMENT/413 naming max_message_bytes": (len(wrong), "==", 0),
            "same vector after": (same, "==", True),
            **clean_log(m),
        }
        return Result("oversized responses", m, bounds)
    finally:
        srv.stop()


def _names_limit(outcome: str) -> bool:
    code, _, message = outcome.partition(" ")
    return code in ("INVALID_ARGUMENT", "413") and "max_message_bytes exceeded" in message


def long_tokens(limit: int, n: int = 16) -> list[str]:
    """``n`` texts of one Latin token each (one jieba token, however long: the issue's "a" *
    16,000), as long as a request under ``limit`` allows: the response holds them all again,
    and their ids and vectors besides."""
    return ["a" * ((limit - 256) // n - 4)] * n


async def _oversized(srv: Server, limit: int) -> dict[str, str]:
    """Each case's outcome: "CODE message" (gRPC) or "STATUS message" (HTTP)."""
    import aiohttp

    out: dict[str, str] = {}
    # A request_id (an id) that fits the request but not the response that echoes it.
    texts, echo, oip_echo = long_tokens(limit), "r" * (limit - 200), "r" * (limit - 120)
    async with channel(srv.target) as ch, aiohttp.ClientSession() as session:
        stub, oip = pb_grpc.EncoderStub(ch), oip_grpc.GRPCInferenceServiceStub(ch)
        cases: dict[str, Callable[[], Awaitable[object]]] = {
            "Encode long tokens": lambda: stub.Encode(encode_request(texts), timeout=60),
            "Encode long tokens, token vectors": lambda: stub.Encode(
                encode_request(texts, token_vectors=True), timeout=60
            ),
            "Encode echoed request_id": lambda: stub.Encode(
                encode_request(["北京冬奥的进度条已经过半"], token_vectors=True, request_id=echo),
                timeout=60,
            ),
            "EncodeStream long tokens": lambda: _first_of_stream(stub, encode_request(texts)),
            "Tokenize short tokens": lambda: stub.Tokenize(
                pb.TokenizeRequest(texts=["a " * 9_500] * 8), timeout=60
            ),
            "EncodeDocument echoed request_id": lambda: stub.EncodeDocument(
                iter([pb.DocumentPiece(text="你好", request_id=echo)]), timeout=60
            ),
            "ModelInfer padded token_vectors": lambda: oip.ModelInfer(
                infer_outputs([LONG[:600]] + ["好"] * 63, "token_vectors", "ids"), timeout=60
            ),
            # 128 x ~450 ids, from 575 tokens: what counting tokens, not padding, lets through
            "ModelInfer padded ids": lambda: oip.ModelInfer(
                infer_outputs([LONG[:800]] + ["好"] * 127, "ids"), timeout=60
            ),
            "ModelInfer echoed id": lambda: oip.ModelInfer(
                infer_outputs(
                    ["北京冬奥的进度条已经过半"], "sentence_vector", "ids", request_id=oip_echo
                ),
                timeout=60,
            ),
        }
        for name, call in cases.items():
            try:
                await call()
                out[name] = "OK"
            except grpc.aio.AioRpcError as e:
                out[name] = f"{e.code().name} {e.details()}"
        for fmt in ("float", "base64"):
            body = {"model": "encoder", "input": ["好"] * 4096, "encoding_format": fmt}
            async with session.post(srv.http + "/v1/embeddings", json=body) as r:
                err = (await r.json()).get("error") or {}
                out[f"/v1/embeddings {fmt}"] = f"{r.status} {err.get('message')}"
    return out


async def _first_of_stream(stub: pb_grpc.EncoderStub, req: pb.EncodeRequest) -> object:
    call = stub.EncodeStream(iter([req]), timeout=60)
    return await call.read()
