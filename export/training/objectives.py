"""What training optimises: the encoder's pooled vector, and the heads and losses built on it.

Terms, combined by summing (``supervised+bow``):
- ``supervised``: a linear classifier on the pooled vector, cross-entropy on the labels.
- ``bow``: the pooled vector predicts its own text's words (softmax over the vocabulary against
  the text's tf-idf-weighted bag of words, as PV-DBOW does), so a text's vector keeps what it is
  about: its topic and content words, not only what the labels ask for.
- ``supcon``: supervised contrastive (Khosla et al.): in a batch, each text's vector is pulled
  towards the vectors of texts with its label and away from the others, by cosine; this shapes
  the neighbourhoods a search sees, which cross-entropy leaves alone.
- ``distill``: the classifier's softened distribution against a teacher's (``--teacher``,
  export/training/teacher.py): cross-entropy at temperature DISTILL_TEMPERATURE, times its
  square, as Hinton et al. weight it so that its gradients match the hard labels' scale.
- ``contrastive``: two views of each text with words dropped; in-batch InfoNCE on the cosine
  of their vectors (SimCSE's unsupervised objective, with word dropout as the noise).
The heads are dropped at export: the bundle holds the encoder alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from zh_rnn_encoder.core.enums import Pooling
from zh_rnn_encoder.export.model import TorchEncoder
from zh_rnn_encoder.export.training.compose import Composed, char_dropout

TERMS = ("supervised", "supcon", "bow", "contrastive", "distill")
TEMPERATURE = 0.05
SUPCON_TEMPERATURE = 0.1
DISTILL_TEMPERATURE = 2.0
CROP_MIN_TOKENS = 4


def parse_objective(text: str) -> dict[str, float]:
    """``"supervised+bow:0.5"`` -> {"supervised": 1.0, "bow": 0.5}: each term and its weight."""
    terms: dict[str, float] = {}
    for part in (t.strip() for t in text.split("+")):
        name, _, weight = part.partition(":")
        if name not in TERMS:
            raise ValueError(f"objective: unknown term {name!r}; use {', '.join(TERMS)}")
        try:
            terms[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"objective: {part!r}: the weight is not a number") from None
    return terms


@dataclass(frozen=True)
class Regularisation:
    dropout: float = 0.2  # on the pooled vector, before every head
    word_dropout: float = 0.1  # share of tokens replaced by <unk> in training
    char_dropout: float = 0.0  # share read by their characters alone (compose.Composed only)
    crop: float = 0.0  # share of texts replaced by a random span of their tokens (see crop())


def pooled(states: Tensor, final: Tensor, lengths: Tensor, mode: Pooling) -> Tensor:
    """states [B, S, F] (zeros past each length), final [B, F] -> [B, F], as the runtime pools."""
    if mode is Pooling.LAST:
        return final
    if mode is Pooling.MEAN:
        return states.sum(1) / lengths.to(states.dtype)[:, None]
    mask = torch.arange(states.shape[1])[None, :] < lengths[:, None]
    return states.masked_fill(~mask[..., None], float("-inf")).max(1).values


class TrainModel(nn.Module):
    """The exported encoder plus the training heads.

    ``bag=True`` trains the embedding alone: a text's vector is the mean of its word vectors
    (fastText's model), seconds an epoch, so the recurrent phase starts from useful words."""

    def __init__(
        self,
        encoder: TorchEncoder,
        terms: dict[str, float],
        classes: int,
        idf: Tensor,
        pooling: Pooling,
        reg: Regularisation,
        unk_id: int,
        bag: bool = False,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        c = encoder.config
        dim, vocab = (c.embedding_dim if bag else c.output_dim), c.vocab_size
        self.encoder, self.terms, self.pooling, self.reg = encoder, terms, pooling, reg
        self.unk_id, self.pad_id, self.bag = unk_id, pad_id, bag
        self.head = nn.Linear(dim, classes) if "supervised" in terms else None
        self.bow = nn.Linear(dim, vocab) if "bow" in terms else None
        self.register_buffer("idf", idf)

    def vector(self, ids: Tensor, lengths: Tensor) -> Tensor:
        if self.bag:
            mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
            x = self.encoder.embedding(ids) * mask[..., None]
            return x.sum(1) / lengths.to(x.dtype)[:, None]
        states, final = self.encoder(ids, lengths)
        return pooled(states, final, lengths, self.pooling)

    def _noisy(self, ids: Tensor) -> Tensor:
        if not self.training:
            return ids
        if self.reg.word_dropout > 0:
            ids = ids.masked_fill(torch.rand(ids.shape) < self.reg.word_dropout, self.unk_id)
        emb = self.encoder.embedding
        if isinstance(emb, Composed):
            ids = char_dropout(ids, self.reg.char_dropout, emb.size, (self.unk_id, self.pad_id))
        return ids

    def losses(
        self, ids: Tensor, lengths: Tensor, labels: Tensor, soft: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Each term's mean loss over the batch, and ``correct``: the head's right answers."""
        if self.training and self.reg.crop > 0:
            ids, lengths = crop(ids, lengths, self.reg.crop, self.pad_id)
        v = self.vector(self._noisy(ids), lengths)
        h = F.dropout(v, self.reg.dropout, self.training)
        out: dict[str, Tensor] = {}
        if self.head is not None:
            known = labels >= 0
            logits = self.head(h[known])
            out["supervised"] = F.cross_entropy(logits, labels[known])
            out["correct"] = (logits.argmax(1) == labels[known]).sum().detach()
            if "distill" in self.terms and soft is not None:
                out["distill"] = _distill(self.head(h), soft)
        if "supcon" in self.terms:
            out["supcon"] = _supcon(v[labels >= 0], labels[labels >= 0])
        if self.bow is not None:
            out["bow"] = self._bow_loss(h, ids, lengths)
        if "contrastive" in self.terms:
            other = self.vector(self._noisy(ids), lengths)
            out["contrastive"] = _info_nce(v, other)
        return out

    def _bow_loss(self, h: Tensor, ids: Tensor, lengths: Tensor) -> Tensor:
        target = torch.zeros(ids.shape[0], self.idf.shape[0])
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).to(target.dtype)
        target.scatter_add_(1, ids, mask)
        target = target * self.idf
        target = target / target.sum(1, keepdim=True).clamp_min(1e-9)
        return -(target * F.log_softmax(self.bow(h), dim=1)).sum(1).mean()


def crop(ids: Tensor, lengths: Tensor, share: float, pad_id: int) -> tuple[Tensor, Tensor]:
    """A ``share`` of the rows replaced by a random contiguous span of their tokens (length
    uniform from CROP_MIN_TOKENS to the whole), so that short texts, and the first states of a
    sequence, which dominate a short text's mean, are trained as much as long reviews are."""
    n, width = ids.shape
    take = torch.rand(n) < share
    low = lengths.clamp(max=CROP_MIN_TOKENS)
    span = low + (torch.rand(n) * (lengths - low + 1)).long()
    span = torch.where(take, span.clamp(max=lengths), lengths)
    start = (torch.rand(n) * (lengths - span + 1)).long()
    pos = torch.arange(width)[None, :]
    out = torch.gather(ids, 1, (start[:, None] + pos).clamp(max=width - 1))
    return out.masked_fill(pos >= span[:, None], pad_id), span


def _supcon(v: Tensor, labels: Tensor) -> Tensor:
    """Mean over anchors of -log p(same label | anchor), over the batch's other texts."""
    n = v.shape[0]
    sim = F.normalize(v, dim=1) @ F.normalize(v, dim=1).T / SUPCON_TEMPERATURE
    self_mask = torch.eye(n, dtype=torch.bool)
    sim = sim.masked_fill(self_mask, float("-inf"))
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    log_p = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    per_anchor = -(log_p.masked_fill(~pos, 0).sum(1)) / pos.sum(1).clamp_min(1)
    return per_anchor[pos.any(1)].mean() if pos.any() else v.sum() * 0


def _distill(logits: Tensor, teacher_logp: Tensor) -> Tensor:
    """T^2 * cross-entropy of softmax(student / T) against softmax(teacher / T), over the rows
    the teacher scored (NaN rows: none)."""
    t = DISTILL_TEMPERATURE
    has = ~torch.isnan(teacher_logp).any(1)
    if not has.any():
        return logits.sum() * 0
    q = F.softmax(teacher_logp[has] / t, dim=1)
    return -(q * F.log_softmax(logits[has] / t, dim=1)).sum(1).mean() * t * t


def _info_nce(a: Tensor, b: Tensor) -> Tensor:
    sim = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / TEMPERATURE
    return F.cross_entropy(sim, torch.arange(a.shape[0]))
