"""The stock openai client against our server's /v1/embeddings, unmodified.

stdin: {"base_url", "api_key", "model", "texts", "dim"}. stdout: what each call returned, as JSON.
"""

import json
import sys

import openai
from openai import OpenAI

a = json.load(sys.stdin)
client = OpenAI(base_url=a["base_url"], api_key=a["api_key"], max_retries=0, timeout=60)
model, texts = a["model"], a["texts"]
out: dict = {}


def vectors(r) -> list:
    return [d.embedding for d in sorted(r.data, key=lambda d: d.index)]


def error(f) -> dict:
    try:
        f()
    except openai.APIStatusError as e:
        return {
            "status": e.status_code,
            "body": e.body,
            "retry_after": e.response.headers.get("retry-after"),
        }
    return {"status": 200}


r = client.embeddings.create(model=model, input=texts, encoding_format="float")
out["float"] = vectors(r)
out["usage"] = {"prompt": r.usage.prompt_tokens, "total": r.usage.total_tokens}
out["model"] = r.model
out["default"] = vectors(client.embeddings.create(model=model, input=texts))  # base64 on the wire
out["base64"] = vectors(
    client.embeddings.create(model=model, input=texts, encoding_format="base64")
)
out["one"] = vectors(client.embeddings.create(model=model, input=texts[0]))
out["same_dimensions"] = vectors(
    client.embeddings.create(model=model, input=texts[:1], dimensions=a["dim"])
)
out["mean"] = vectors(
    client.embeddings.create(
        model=model, input=texts, extra_body={"pooling": "mean", "normalize": True}
    )
)
out["models"] = [m.id for m in client.models.list()]
out["retrieve"] = client.models.retrieve(model).id
# our fields beside OpenAI's (request defaults, model card), as the client keeps them
out["models_extra"] = [m.model_extra for m in client.models.list()]
out["retrieve_extra"] = client.models.retrieve(model).model_extra
out["unknown_model"] = error(lambda: client.embeddings.create(model="gpt-x", input=texts))
out["dimensions"] = error(lambda: client.embeddings.create(model=model, input=texts, dimensions=7))
out["tokens"] = error(lambda: client.embeddings.create(model=model, input=[[1, 2, 3]]))
out["empty_text"] = error(lambda: client.embeddings.create(model=model, input=["ok", ""]))
out["too_many"] = error(lambda: client.embeddings.create(model=model, input=["你好"] * 9))
out["bad_pooling"] = error(
    lambda: client.embeddings.create(model=model, input=texts, extra_body={"pooling": "median"})
)
bad_key = OpenAI(base_url=a["base_url"], api_key="wrong", max_retries=0)
out["bad_key"] = error(lambda: bad_key.embeddings.create(model=model, input=texts))
json.dump(out, sys.stdout)
