"""Every recurrent module a tutorial user builds in one keyword, brought over with its outputs,
and word->index dicts as users write them."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.vocab import PAD, UNK
from zh_rnn_encoder.export import checkpoint_from_modules
from zh_rnn_encoder.export.onnx_export import build_graph
from zh_rnn_encoder.export.tutorial import map_vocabulary
from zh_rnn_encoder.export.verify import verify

WORDS = ["北京", "冬奥", "的", "进度条", "已经", "过半"]
E, H = 16, 24
# one keyword away from the tutorial's nn.RNN(128, 256): module options and their builders
OPTIONS = {
    "relu rnn": lambda: nn.RNN(E, H, nonlinearity="relu"),
    "relu rnn, 2 layers, bidirectional": lambda: nn.RNN(
        E, H, num_layers=2, nonlinearity="relu", bidirectional=True
    ),
    "rnn bias=False": lambda: nn.RNN(E, H, bias=False),
    "lstm bias=False": lambda: nn.LSTM(E, H, num_layers=2, bias=False),
    "gru bias=False, bidirectional": lambda: nn.GRU(E, H, bias=False, bidirectional=True),
    "gru batch_first": lambda: nn.GRU(E, H, batch_first=True),
    "lstm dropout=0.5 between 2 layers": lambda: nn.LSTM(E, H, num_layers=2, dropout=0.5),
}
EMBEDDINGS = {
    "plain": lambda n: nn.Embedding(n, E),
    "padding_idx": lambda n: nn.Embedding(n, E, padding_idx=2),
    "max_norm": lambda n: nn.Embedding(n, E, max_norm=1.0),
}


def user_outputs(embedding: nn.Embedding, rnn: nn.RNNBase, ids: torch.Tensor):
    """The user's own modules in eval mode, fed as their layout wants: (states, h_n)."""
    embedding.eval(), rnn.eval()
    x = embedding(ids if rnn.batch_first else ids.T)
    out, h = rnn(x)
    out = out if rnn.batch_first else out.transpose(0, 1)
    return out, h[0] if isinstance(h, tuple) else h


@pytest.mark.parametrize("emb_kind", EMBEDDINGS)
@pytest.mark.parametrize("option", OPTIONS)
def test_module_keeps_its_outputs_and_exports_with_parity(option: str, emb_kind: str) -> None:
    torch.manual_seed(0)
    rnn = OPTIONS[option]()
    embedding = EMBEDDINGS[emb_kind](len(WORDS))
    with torch.no_grad():
        embedding.weight.mul_(3)  # so that max_norm has rows to renormalise
    ckpt = checkpoint_from_modules(embedding, rnn, {w: i for i, w in enumerate(WORDS)})
    ids = torch.tensor([[0, 1, 2, 3, 4, 5, 3, 1]])
    with torch.no_grad():
        out, h_n = user_outputs(embedding, rnn, ids)
        states, final = ckpt.model(ids, torch.tensor([ids.shape[1]]))
    assert torch.allclose(states, out, atol=1e-6)
    d = 2 if rnn.bidirectional else 1
    want_final = torch.cat([h_n[-d], h_n[-1]], dim=-1) if d == 2 else h_n[-1]
    assert torch.allclose(final, want_final, atol=1e-6)
    graph = build_graph(ckpt.model, "0" * 64)
    report = verify(graph, ckpt.model, batches=(1, 3, 64), seqs=(1, 7, 130, 512), n_random=2)
    assert report.max_abs_err <= contract.PARITY_ATOL
    assert report.max_invariance_err <= contract.BATCH_INVARIANCE_ATOL


def test_lstm_projection_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="proj_size=8 cannot be exported: ONNX's LSTM op has no"):
        checkpoint_from_modules(nn.Embedding(3, E), nn.LSTM(E, H, proj_size=8), {"a": 0})


def test_input_size_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="rnn.input_size 9 != embedding_dim 16"):
        checkpoint_from_modules(nn.Embedding(3, E), nn.GRU(9, H), {"a": 0})


def test_tutorial_dict_appends_reserved_tokens() -> None:
    v, notes = map_vocabulary({"北京": 1, "冬奥": 0}, rows=2)
    assert v.tokens == ["冬奥", "北京", PAD, UNK] and (v.pad_id, v.unk_id) == (2, 3)
    assert any("appended as row 2" in n for n in notes)


def test_gaps_keep_their_rows() -> None:
    v, notes = map_vocabulary({"a": 0, "b": 2, "c": 5}, rows=7)
    assert [v.index[w] for w in "abc"] == [0, 2, 5]
    assert v.tokens[1] == "<unused:1>" and len(v) == 9
    assert "rows 1, 3-4, 6 have no word" in notes[0]


@pytest.mark.parametrize(
    ("mapping", "kw", "pad", "unk"),
    [
        ({"[PAD]": 0, "[UNK]": 1, "北京": 2}, {}, "[PAD]", "[UNK]"),
        ({"<blank>": 3, "北京": 0, "<oov>": 1, "好": 2}, {}, "<blank>", "<oov>"),
        ({"北京": 0, "PAD": 1, "?": 2}, {"pad_token": "PAD", "unk_token": "?"}, "PAD", "?"),
        ({"北京": 0, "零": 1}, {"padding_idx": 1}, "零", UNK),
    ],
)
def test_reserved_tokens_under_other_names(mapping, kw, pad, unk) -> None:
    v, notes = map_vocabulary(mapping, rows=len(mapping), **kw)
    assert (v.pad, v.unk) == (pad, unk)
    assert all(v.index[w] == i for w, i in mapping.items())  # no known id moved
    assert len(notes) == 2


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"a": 0, "b": 0}, "'a' and 'b' both have index 0"),
        ({"a": 3}, "'a' has index 3, not a row of the 3-row embedding"),
        ({"a": -1}, "not a row"),
        ({"a": "0"}, "not a row"),
    ],
)
def test_bad_dicts_are_refused(mapping, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        map_vocabulary(mapping, rows=3)


def test_mapping_is_logged(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="encoder.export"):
        checkpoint_from_modules(nn.Embedding(4, E), nn.LSTM(E, H, 2, dropout=0.2), {"[PAD]": 3})
    assert "padding token: '[PAD]' (row 3) found in the dict" in caplog.text
    assert "rows 0-2 have no word" in caplog.text and "dropout 0.2" in caplog.text
