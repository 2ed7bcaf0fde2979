"""Request fields of the wrong type, without a server: every JSON field of /v1/embeddings and
every Open Inference parameter is accepted or refused naming itself (OpenAI's ``param``), and
nothing else escapes the converters (which would be a 500 or INTERNAL)."""

from __future__ import annotations

import json

import pytest

from zh_rnn_encoder.core.enums import Truncation
from zh_rnn_encoder.core.errors import InvalidInput, NotFound
from zh_rnn_encoder.proto.inference import open_inference_pb2 as oip_pb
from zh_rnn_encoder.transport.oip import convert as oip
from zh_rnn_encoder.transport.openai import convert

DIM = 8
VALUES: list[object] = [[], {}, ["x"], 1.5, True, None, "", -1]
BASE = {"model": "encoder", "input": ["你好"]}
# The matrix's values each field accepts; every other one is refused naming the field.
ACCEPTED = {
    "input": [[], ["x"], ""],  # a list or a string: the runtime refuses the empty ones
    "encoding_format": [None],
    "user": [None, ""],
    "pooling": [None],
    "normalize": [True, None],
    "truncation": [None],
    "max_tokens": [None],
    "dimensions": [None],
}


def _parse(**fields: object) -> tuple[list[str], object, str]:
    """As the API takes a body: parsed, then its dimensions checked against the model's."""
    r = convert.parse_request(json.dumps({**BASE, **fields}).encode())
    r.check_dimensions(DIM)
    return r.texts, r.options, r.fmt


def _param(e: Exception) -> str | None:
    return json.loads(convert.error_reply(e).body)["error"]["param"]


@pytest.mark.parametrize("field", convert.ACCEPTED)
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_each_field_takes_its_type_or_is_refused_naming_it(field: str, value: object) -> None:
    if value in ACCEPTED.get(field, []):
        _parse(**{field: value})
        return
    with pytest.raises(InvalidInput) as e:
        _parse(**{field: value})
    assert _param(e.value) == field, str(e.value)
    assert convert.error_reply(e.value).status == 400 or isinstance(e.value, NotFound)


def test_the_matrix_covers_every_field() -> None:
    assert set(ACCEPTED) | {"model"} == set(convert.ACCEPTED)


def test_null_is_absent_and_types_are_strict() -> None:
    texts, opt, fmt = _parse(encoding_format=None, truncation=None, max_tokens=None, user=None)
    assert (texts, fmt, opt.truncation, opt.max_tokens) == (["你好"], "float", Truncation.NONE, 0)
    assert _parse(input=[])[0] == [] and _parse(input="")[0] == [""]  # the runtime refuses them
    for field, value, words in [
        ("encoding_format", [], "encoding_format: expected a string, got []"),
        ("encoding_format", "", "encoding_format: expected 'float' or 'base64', got \"\""),
        ("model", ["x"], 'model: expected a string, got ["x"]'),
        ("dimensions", True, "dimensions: expected an integer, got true"),
        ("dimensions", 8.0, "dimensions: expected an integer, got 8.0"),
        ("user", {}, "user: expected a string, got {}"),
        ("normalize", "yes", 'normalize: expected true or false, got "yes"'),
        ("max_tokens", "x" * 100, 'max_tokens: expected an integer, got "xxxxxxxxx'),
    ]:
        with pytest.raises(InvalidInput) as e:
            _parse(**{field: value})
        assert str(e.value).startswith(words), str(e.value)
    assert len(str(e.value)) < 90  # a value is shown cut short, never echoed whole
    assert _parse(dimensions=DIM, encoding_format="base64")[2] == "base64"


@pytest.mark.parametrize("name", [*oip.PARAMETERS, *oip.IGNORED_PARAMETERS, "x"])
def test_each_parameter_takes_its_type_or_is_refused_naming_it(name: str) -> None:
    choices = [("bool_param", True), ("int64_param", -1), ("int64_param", 0),
               ("string_param", ""), ("string_param", "x"), ("double_param", 1.5),
               ("uint64_param", 1), ("", None), ("string_param", "好" * 10_000)]  # fmt: skip
    for choice, value in choices:
        r = oip_pb.ModelInferRequest(model_name="encoder")
        p = r.parameters[name]
        if choice:
            setattr(p, choice, value)
        try:
            oip.options_of(r, [oip.SENTENCE_VECTOR])
        except InvalidInput as e:
            assert name in str(e), str(e)
