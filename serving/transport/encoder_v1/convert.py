"""encoder.v1 messages <-> domain objects: every conversion the servicer needs, in one place
(the values the client shares, enums and tensors, in zh_rnn_encoder.proto_convert)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from zh_rnn_encoder import __version__
from zh_rnn_encoder.core.enums import Cell
from zh_rnn_encoder.core.errors import InvalidInput
from zh_rnn_encoder.core.manifest import ModelCard
from zh_rnn_encoder.proto.encoder.v1 import encoder_pb2 as pb
from zh_rnn_encoder.proto_convert import (
    fill_tensor,
    pooling_of,
    pooling_pb,
    to_numpy,
    truncation_of,
)
from zh_rnn_encoder.runtime.admission import ResponseSize, response_bytes
from zh_rnn_encoder.runtime.document import DocumentEncoding
from zh_rnn_encoder.runtime.models import Models, ServedModel
from zh_rnn_encoder.runtime.state import EncoderState
from zh_rnn_encoder.runtime.types import EncodeOptions, EncodeResult, Tokenized

TOKENIZER_NAME = "jieba"


def options_of(r: pb.EncodeRequest) -> EncodeOptions:
    """Unset pooling (POOLING_UNSPECIFIED) and normalize stay None: the model's defaults."""
    return EncodeOptions(
        pooling_of(r.pooling),
        _normalize_of(r),
        truncation_of(r.truncation),
        r.max_tokens,
        r.return_token_vectors,
        r.return_state,
    )


def document_options_of(first: pb.DocumentPiece) -> EncodeOptions:
    """A document's options, from its first piece."""
    return EncodeOptions(pooling_of(first.pooling), _normalize_of(first))


def _normalize_of(r: pb.EncodeRequest | pb.DocumentPiece) -> bool | None:
    return r.normalize if r.HasField("normalize") else None


def states_of(r: pb.EncodeRequest) -> list[EncoderState | None]:
    """The request's initial states (an empty State: none for that text)."""
    return [state_of(m, f"initial_states[{i}]") for i, m in enumerate(r.initial_states)]


def state_of(m: pb.State, where: str) -> EncoderState | None:
    """A State message as the runtime's EncoderState; InvalidInput naming the field. Whether it
    fits this model is the Encoder's check."""
    if m.version == 0:
        return None

    def tensor(t: pb.Tensor, name: str) -> np.ndarray:
        if len(t.data) != 4 * int(np.prod(t.shape)):
            raise InvalidInput(f"{where}.{name}: {len(t.data)} bytes for shape {list(t.shape)}")
        return to_numpy(t)

    try:
        cell = Cell(m.cell)
    except ValueError:
        raise InvalidInput(f"{where}.cell: unknown cell {m.cell!r}") from None
    return EncoderState(
        graph_sha256=m.graph_sha256,
        cell=cell,
        num_layers=m.num_layers,
        hidden_size=m.hidden_size,
        h=tensor(m.h, "h"),
        c=tensor(m.c, "c") if m.HasField("c") else None,
        tokens=m.tokens,
        token_sum=np.array(m.token_sum, dtype=np.float64),
        token_max=tensor(m.token_max, "token_max"),
        version=m.version,
    )


def fill_state(m: pb.State, s: EncoderState) -> None:
    m.version, m.graph_sha256, m.cell = s.version, s.graph_sha256, s.cell.value
    m.num_layers, m.hidden_size, m.tokens = s.num_layers, s.hidden_size, s.tokens
    fill_tensor(m.h, s.h)
    if s.c is not None:
        fill_tensor(m.c, s.c)
    m.token_sum.extend(s.token_sum.tolist())
    fill_tensor(m.token_max, s.token_max)


def response_size(request_id: str, model_version: str) -> ResponseSize:
    """The upper bound of an EncodeResponse's bytes (runtime/admission.py), with the request_id
    and model_version it carries: the tag and length of a string take at most 6 bytes each."""
    echoed = len(request_id.encode("utf-8")) + len(model_version.encode("utf-8")) + 12
    return lambda shape: response_bytes(shape) + echoed


def encode_response(
    res: EncodeResult, request_id: str, model_version: str, arrived: float
) -> pb.EncodeResponse:
    # Filling messages in place is about twice as fast as building them from keyword arguments.
    r = pb.EncodeResponse(request_id=request_id, model_version=model_version)
    add = r.encodings.add
    for e in res.encodings:
        m = add(
            tokens=e.tokens,
            ids=e.ids.tolist(),
            truncated=e.truncated,
            original_token_count=e.original_token_count,
        )
        fill_tensor(m.sentence_vector, e.vector)
        if e.token_vectors is not None:
            fill_tensor(m.token_vectors, e.token_vectors)
        if e.state is not None:
            fill_state(m.state, e.state)
    us = 1e6
    t = r.timing
    t.tokenize_us = int(res.tokenize_s * us)
    t.queue_us = int(res.queue_s * us)
    t.inference_us = int(res.inference_s * us)
    t.total_us = int((time.perf_counter() - arrived) * us)
    return r


def document_response(
    doc: DocumentEncoding, request_id: str, model_version: str
) -> pb.DocumentEncoding:
    r = pb.DocumentEncoding(
        token_count=doc.tokens,
        char_count=doc.chars,
        request_id=request_id,
        model_version=model_version,
    )
    fill_tensor(r.sentence_vector, doc.vector)
    fill_state(r.state, doc.state)
    return r


def tokenize_response(out: list[Tokenized], model_version: str) -> pb.TokenizeResponse:
    return pb.TokenizeResponse(
        texts=[
            pb.TokenizedText(tokens=t.tokens, ids=t.ids.tolist(), unknown_count=t.unknown)
            for t in out
        ],
        model_version=model_version,
    )


def list_models(models: Models) -> pb.ListModelsResponse:
    """The loaded models, the default first (every one, once the server serves)."""
    return pb.ListModelsResponse(
        models=[
            pb.ServedModel(name=m.name, version=m.version, is_default=m.name == models.default)
            for m in models
        ]
    )


def model_info(model: ServedModel) -> pb.ModelInfo:
    info = model.encoder.info
    m, tok, lim = info.model, info.tokenizer, info.limits
    return pb.ModelInfo(
        model_name=model.name,
        model_version=model.version,
        cell=m.cell.value,
        embedding_dim=m.embedding_dim,
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        bidirectional=m.bidirectional,
        output_dim=m.output_dim,
        vocab_size=info.vocab_size,
        pad_id=info.pad_id,
        unk_id=info.unk_id,
        tokenizer=pb.TokenizerInfo(
            name=TOKENIZER_NAME,
            version=tok.jieba_version,
            hmm=tok.hmm,
            whitespace=tok.whitespace.value,
            user_dictionary=bool(tok.user_dict),
            backend=info.tokenizer_backend,
        ),
        bundle_sha256=info.file_hashes,
        execution_provider=info.provider,
        intra_op_threads=info.threads,
        limits=pb.Limits(
            max_texts_per_request=lim.max_texts_per_request,
            max_chars_per_text=lim.max_chars_per_text,
            max_tokens_per_text=lim.max_tokens_per_text,
            max_message_bytes=lim.max_message_bytes,
            max_queued_texts=lim.max_queued_texts,
        ),
        golden_max_abs_err=info.golden_max_abs_err,
        server_version=__version__,
        default_pooling=pooling_pb(info.defaults.pooling),
        default_normalize=info.defaults.normalize,
        model_card=None if info.card is None else model_card(info.card),
        quantization=(
            None
            if info.quantization is None
            else pb.Quantization(**dataclasses.asdict(info.quantization))
        ),
    )


def model_card(c: ModelCard) -> pb.ModelCard:
    return pb.ModelCard(
        objective=c.objective,
        data=[pb.DataSource(**dataclasses.asdict(d)) for d in c.data],  # the same fields
        split=c.split,
        seed=c.seed,
        examples=c.examples,
        quality=c.quality,
        notes=c.notes,
    )
