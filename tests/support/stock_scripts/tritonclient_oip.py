"""Stock tritonclient (gRPC) against our server's Open Inference Protocol service, unmodified.

stdin: {"target", "model", "texts", "token"?}. stdout: what each call returned, as JSON.
"""

import json
import sys

import numpy as np
import tritonclient.grpc as tc
from google.protobuf import empty_pb2
from google.protobuf.unknown_fields import UnknownFieldSet
from tritonclient.utils import InferenceServerException

a = json.load(sys.stdin)
headers = {"authorization": f"Bearer {a['token']}"} if a.get("token") else None
client = tc.InferenceServerClient(a["target"])
model, texts = a["model"], a["texts"]
out: dict = {}


def text_input(shape: list[int]) -> tc.InferInput:
    x = tc.InferInput("TEXT", shape, "BYTES")
    x.set_data_from_numpy(np.array(texts, dtype=object).reshape(shape))
    return x


def infer(shape: list[int], outputs: list[str] | None, **kw: object) -> dict:
    asked = [tc.InferRequestedOutput(n) for n in outputs] if outputs else None
    r = client.infer(model, [text_input(shape)], outputs=asked, headers=headers, **kw)
    resp = r.get_response()
    names = [o.name for o in resp.outputs]
    return {
        "id": resp.id,
        "model_version": resp.model_version,
        "names": names,
        "arrays": {n: r.as_numpy(n).tolist() for n in names},
        "shapes": {n: list(r.as_numpy(n).shape) for n in names},
    }


def properties(meta) -> dict:
    """ModelMetadataResponse field 6, map<string, string> properties: tritonclient's proto
    does not declare it, and protobuf keeps it among the unknown fields (entries: key 1,
    value 2)."""
    out = {}
    for f in UnknownFieldSet(meta):
        if f.field_number == 6:
            entry = UnknownFieldSet(empty_pb2.Empty.FromString(f.data))
            kv = {e.field_number: e.data.decode() for e in entry}
            out[kv.get(1, "")] = kv.get(2, "")
    return out


def error(f) -> dict:
    try:
        f()
    except InferenceServerException as e:
        return {"status": e.status(), "message": e.message()}
    return {"status": "OK"}


out["live"] = client.is_server_live(headers=headers)
out["ready"] = client.is_server_ready(headers=headers)
out["model_ready"] = client.is_model_ready(model, headers=headers)
out["metadata"] = client.get_model_metadata(model, headers=headers, as_json=True)
out["properties"] = properties(client.get_model_metadata(model, headers=headers))
out["server_metadata"] = client.get_server_metadata(headers=headers, as_json=True)
out["all"] = infer([len(texts)], None, request_id="req-7")
out["n1"] = infer(
    [len(texts), 1],
    ["sentence_vector"],
    parameters={"pooling": "mean", "normalize": True},
)
out["unknown_model"] = error(
    lambda: client.infer("nope", [text_input([len(texts)])], headers=headers)
)
out["unknown_version"] = error(
    lambda: client.infer(model, [text_input([len(texts)])], model_version="9", headers=headers)
)
out["bad_parameter"] = error(
    lambda: client.infer(
        model, [text_input([len(texts)])], parameters={"pooling": "median"}, headers=headers
    )
)
out["typo_parameter"] = error(
    lambda: client.infer(
        model, [text_input([len(texts)])], parameters={"poolng": "mean"}, headers=headers
    )
)
out["unknown_output"] = error(
    lambda: client.infer(
        model,
        [text_input([len(texts)])],
        outputs=[tc.InferRequestedOutput("logits")],
        headers=headers,
    )
)
json.dump(out, sys.stdout)
