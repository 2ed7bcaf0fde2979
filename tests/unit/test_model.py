import pytest
import torch
from torch import nn

from zh_rnn_encoder.core.manifest import ModelConfig
from zh_rnn_encoder.export.model import init_model
from zh_rnn_encoder.export.tutorial import checkpoint_from_modules


def test_seeded_init_is_deterministic() -> None:
    c = ModelConfig(vocab_size=30, cell="gru", embedding_dim=8, hidden_size=12)
    a, b, other = init_model(c, 7), init_model(c, 7), init_model(c, 8)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.embedding.weight, other.embedding.weight)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_shapes_and_zeros_past_length(cell: str) -> None:
    m = init_model(
        ModelConfig(
            vocab_size=30,
            cell=cell,
            embedding_dim=8,
            hidden_size=12,
            num_layers=2,
            bidirectional=True,
        ),
        0,
    )
    ids = torch.randint(0, 30, (3, 9))
    states, final = m(ids, torch.tensor([9, 4, 1]))
    assert states.shape == (3, 9, 24) and final.shape == (3, 24)
    assert torch.all(states[1, 4:] == 0) and torch.all(states[2, 1:] == 0)
    # forward final = state at the true end; backward final = backward state at position 0
    assert torch.equal(final[1, :12], states[1, 3, :12])
    assert torch.equal(final[1, 12:], states[1, 0, 12:])


def test_defaults_are_the_tutorials() -> None:
    c = ModelConfig(vocab_size=10)
    assert (c.cell, c.embedding_dim, c.hidden_size, c.num_layers, c.bidirectional) == (
        "rnn",
        128,
        256,
        1,
        False,
    )
    with pytest.raises(ValueError, match="cell"):
        ModelConfig(vocab_size=10, cell="transformer")


def test_tutorial_modules_keep_their_outputs() -> None:
    """nn.RNN(128, 256) fed (seq, batch, 128) as in the tutorial gives what our model gives."""
    torch.manual_seed(0)
    vocab = {"北京": 0, "冬奥": 1, "的": 2, "进度条": 3}
    embedding, rnn = nn.Embedding(len(vocab), 128), nn.RNN(input_size=128, hidden_size=256)
    ckpt = checkpoint_from_modules(embedding, rnn, vocab)
    ids = torch.tensor([[0, 1, 2, 3]])
    with torch.no_grad():
        out, h_n = rnn(embedding(ids.T))  # (seq, batch, 256), (1, batch, 256)
        states, final = ckpt.model(ids, torch.tensor([4]))
    assert torch.allclose(states[0], out[:, 0], atol=1e-6)
    assert torch.allclose(final[0], h_n[0, 0], atol=1e-6)
    assert ckpt.vocab.tokens[:4] == ["北京", "冬奥", "的", "进度条"]
    assert (ckpt.vocab.pad_id, ckpt.vocab.unk_id) == (4, 5)
    assert torch.all(ckpt.model.embedding.weight[4:] == 0)


def test_checkpoint_round_trip(tmp_path) -> None:
    from zh_rnn_encoder.core.manifest import TokenizerConfig
    from zh_rnn_encoder.core.vocab import Vocab
    from zh_rnn_encoder.export import checkpoint as ckpt_io
    from zh_rnn_encoder.export.checkpoint import Checkpoint

    vocab = Vocab.build([["北京", "冬奥"], ["北京"]])
    model = init_model(
        ModelConfig(
            vocab_size=len(vocab),
            cell="lstm",
            embedding_dim=8,
            hidden_size=6,
            num_layers=2,
            bidirectional=True,
        ),
        5,
    )
    cfg = TokenizerConfig(hmm=False, whitespace="drop")
    ckpt_io.save(Checkpoint(model, vocab, cfg), tmp_path / "c.pt")
    back = ckpt_io.load(tmp_path / "c.pt")
    assert back.model.config == model.config and back.vocab.tokens == vocab.tokens
    assert back.tokenizer == cfg
    ids, lengths = torch.tensor([[2, 3, 0]]), torch.tensor([2])
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(ids, lengths), back.model(ids, lengths)))
    with pytest.raises(ValueError, match="vocabulary has"):
        Checkpoint(model, Vocab.build([["a"]]), cfg)
