"""Stock KServe InferenceGRPCClient against our server's Open Inference Protocol service.

Sends TEXT in contents.bytes_contents (a list, binary_data off) and in raw_input_contents.
stdin: {"target", "model", "texts", "token"?}. stdout: what each call returned, as JSON.
"""

import asyncio
import json
import sys

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest


async def main() -> dict:
    a = json.load(sys.stdin)
    headers = (("authorization", f"Bearer {a['token']}"),) if a.get("token") else None
    model, texts = a["model"], a["texts"]
    out: dict = {}
    async with InferenceGRPCClient(a["target"], timeout=60) as client:
        out["live"] = await client.is_server_live(headers=headers)
        out["ready"] = await client.is_server_ready(headers=headers)
        out["model_ready"] = await client.is_model_ready(model, headers=headers)

        as_list = InferInput("TEXT", [len(texts)], "BYTES", data=list(texts))
        r = await client.infer(InferRequest(model, [as_list], request_id="k-1"), headers=headers)
        out["contents"] = {o.name: o.as_numpy().tolist() for o in r.outputs}
        out["id"] = r.id

        raw = InferInput("TEXT", [len(texts)], "BYTES")
        raw.set_data_from_numpy(np.array(texts, dtype=object), binary_data=True)
        r = await client.infer(InferRequest(model, [raw]), headers=headers)
        out["raw"] = {o.name: o.as_numpy().tolist() for o in r.outputs}
        try:
            await client.infer(InferRequest("nope", [raw]), headers=headers)
            out["unknown_model"] = "OK"
        except grpc.RpcError as e:
            out["unknown_model"] = e.code().name
    return out


json.dump(asyncio.run(main()), sys.stdout)
