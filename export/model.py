"""The encoder in PyTorch: Embedding then a recurrent layer, honouring each text's true length."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zh_rnn_encoder.core.enums import Cell
from zh_rnn_encoder.core.manifest import ModelConfig

_CELL_CLASSES: dict[Cell, type[nn.RNNBase]] = {
    Cell.RNN: nn.RNN,
    Cell.LSTM: nn.LSTM,
    Cell.GRU: nn.GRU,
}


class TorchEncoder(nn.Module):
    """ids [batch, seq] + lengths [batch] -> states [batch, seq, D*H], final [batch, D*H]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        extra = {"nonlinearity": config.nonlinearity.value} if config.cell is Cell.RNN else {}
        self.rnn = _CELL_CLASSES[config.cell](
            input_size=config.embedding_dim,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            bias=config.bias,
            batch_first=True,
            **extra,
        )

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """ids: int64 [B, S]; lengths: int64 [B], each in 1..S.

        Returns states float32 [B, S, D*H] (zeros past each length) and final float32 [B, D*H]:
        the top layer's forward state at each true end, then the backward state at position 0.
        """
        states, final, _, _ = self.forward_state(ids, lengths)
        return states, final

    def forward_state(
        self, ids: Tensor, lengths: Tensor, h0: Tensor | None = None, c0: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """As forward, from the initial state ``h0`` (and ``c0`` for LSTM), [L*D, B, H] as
        PyTorch lays them out (zeros when None); also returns h_n (and c_n) [L*D, B, H]."""
        x = self.embedding(ids)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        c = self.config
        hx = None
        if h0 is not None or c0 is not None:
            zeros = torch.zeros(c.num_layers * c.directions, ids.shape[0], c.hidden_size)
            h0 = zeros if h0 is None else h0.expand_as(zeros).contiguous()
            if c.cell is Cell.LSTM:
                hx = (h0, zeros if c0 is None else c0.expand_as(zeros).contiguous())
            else:
                hx = h0
        out, h_n = self.rnn(packed, hx)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        c_n = None
        if isinstance(h_n, tuple):  # LSTM: (h_n, c_n)
            h_n, c_n = h_n
        top = h_n.view(c.num_layers, c.directions, ids.shape[0], c.hidden_size)[-1]
        final = top.permute(1, 0, 2).reshape(ids.shape[0], c.output_dim)
        return states, final, h_n, c_n

    @classmethod
    def from_modules(
        cls, embedding: nn.Embedding, rnn: nn.RNNBase, extra_rows: int = 0
    ) -> TorchEncoder:
        """Wrap modules built as in the tutorial (seq-first ``nn.RNN(128, 256)`` and friends).

        Accepted as they are: ``batch_first`` (the parameters are the same), ``dropout`` between
        layers (a training-time op; inference ignores it), ``bias=False``, a relu ``nn.RNN``, an
        embedding's ``padding_idx``. An embedding ``max_norm`` is applied to the exported table,
        as eager PyTorch applies it to every row it looks up. ``extra_rows`` appends zero rows
        for reserved tokens the user's vocabulary lacked; they never change a known word's encoding.
        """
        config = config_of(embedding, rnn, extra_rows)
        model = cls(config)
        with torch.no_grad():
            weight = embedding.weight.detach().clone()
            if embedding.max_norm is not None:
                rows = torch.arange(weight.shape[0], device=weight.device)
                torch.embedding_renorm_(weight, rows, embedding.max_norm, embedding.norm_type)
            model.embedding.weight.zero_()
            model.embedding.weight[: weight.shape[0]] = weight
            model.rnn.load_state_dict(rnn.state_dict())  # same parameters whatever batch_first
        return model.eval()


def config_of(embedding: nn.Embedding, rnn: nn.RNNBase, extra_rows: int = 0) -> ModelConfig:
    """The ModelConfig of tutorial-style modules; ValueError naming what cannot be exported."""
    cell = next((k for k, v in _CELL_CLASSES.items() if type(rnn) is v), None)
    if cell is None:
        raise TypeError(f"unsupported recurrent module {type(rnn).__name__}; use RNN/LSTM/GRU")
    if getattr(rnn, "proj_size", 0):
        raise ValueError(
            f"LSTM proj_size={rnn.proj_size} cannot be exported: ONNX's LSTM op has no output "
            "projection, and no Scan formulation of it is built; train with proj_size=0"
        )
    if rnn.input_size != embedding.embedding_dim:
        raise ValueError(
            f"rnn.input_size {rnn.input_size} != embedding_dim {embedding.embedding_dim}"
        )
    return ModelConfig(
        vocab_size=embedding.num_embeddings + extra_rows,
        cell=cell,
        embedding_dim=embedding.embedding_dim,
        hidden_size=rnn.hidden_size,
        num_layers=rnn.num_layers,
        bidirectional=rnn.bidirectional,
        nonlinearity=getattr(rnn, "nonlinearity", "tanh"),
        bias=rnn.bias,
    )


def init_model(config: ModelConfig, seed: int) -> TorchEncoder:
    """A randomly initialised encoder, the same for the same seed (the tutorial's model)."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return TorchEncoder(config).eval()
    finally:
        torch.random.set_rng_state(gen_state)
