"""One evaluation: each model's vectors of each set computed once, then every task on them."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from zh_rnn_encoder.core.enums import Pooling, Truncation
from zh_rnn_encoder.core.errors import InvalidInput
from zh_rnn_encoder.data.records import DataError
from zh_rnn_encoder.eval import tasks
from zh_rnn_encoder.eval.sets import LabelledSet, Pairs
from zh_rnn_encoder.runtime.encoder import EncodeOptions, Encoder

Matrix: TypeAlias = np.ndarray | sparse.spmatrix
# BLAS and OpenMP threads for the tasks: one. Measured on 2 cores, a logistic regression on
# 14k x 256 took 0.62 s with the default threads, 0.51 s with 2 and 0.20 s with 1; and one thread
# gives the same sums, so the same figures, on any machine.
TASK_THREADS = 1


class Model(Protocol):
    name: str
    kind: str  # "bundle" or "baseline"
    about: str  # what it is, for the report

    def vectors(self, texts: Sequence[str]) -> Matrix: ...


class Served:
    """A bundle's served vectors: ``Encoder.encode`` with the request defaults, unless pooling
    or normalize are named. Texts over the token limit keep their first tokens."""

    kind = "bundle"

    def __init__(
        self,
        name: str,
        encoder: Encoder,
        pooling: Pooling | str | None = None,
        normalize: bool | None = None,
    ) -> None:
        self.name, self.encoder = name, encoder
        named = None if pooling is None else Pooling.parse(pooling, "pooling")
        opt = encoder.resolve(EncodeOptions(named, normalize))
        assert opt.pooling is not None  # resolve names every option
        self.pooling, self.normalize = opt.pooling, opt.normalize
        b = encoder.bundle
        m = b.model
        self.about = (
            f"{b.path}: {m.cell.value}, {m.num_layers} layer(s), "
            f"{'bidirectional, ' if m.bidirectional else ''}{m.embedding_dim}/{m.hidden_size}, "
            f"pooling {self.pooling.value}{', normalised' if self.normalize else ''}; "
            f"bundle.json sha256 {b.digest[:12]}"
        )

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        out = self.encoder.encode(
            texts, pooling=self.pooling, normalize=self.normalize, truncation=Truncation.KEEP_FIRST
        )
        return np.stack([e.vector for e in out])


@dataclass(frozen=True)
class Data:
    """train, valid, test and optionally ood; scored pairs or None."""

    sets: dict[str, LabelledSet]
    pairs: Pairs | None = None


@dataclass
class Scores:
    name: str
    kind: str
    about: str
    metrics: dict[str, float] = field(default_factory=dict)
    probe: tasks.Selection | None = None


def evaluate(
    models: Sequence[Model], data: Data, k: int = 10, seed: int = tasks.SEED
) -> list[Scores]:
    """Every task for every model, in order: a list of Scores."""
    return [_one(m, data, k, seed) for m in models]


def _one(model: Model, data: Data, k: int, seed: int) -> Scores:
    t0 = time.perf_counter()
    X = {name: _vectors(model, s.texts, name, s.sources) for name, s in data.sets.items()}
    pair_vectors = _pair_vectors(model, data.pairs) if data.pairs else None
    t1 = time.perf_counter()
    with threadpool_limits(limits=TASK_THREADS):
        out = _tasks(model, X, pair_vectors, data, k, seed)
    print(
        f"encoder-eval: {model.name}: vectors {t1 - t0:.1f}s, tasks "
        f"{time.perf_counter() - t1:.1f}s",
        file=sys.stderr,
    )
    return out


def _tasks(
    model: Model,
    X: dict[str, Matrix],
    pair_vectors: tuple[Matrix, Matrix] | None,
    data: Data,
    k: int,
    seed: int,
) -> Scores:
    out = Scores(model.name, model.kind, model.about)
    split = {name: tasks.Split(X[name], np.asarray(s.labels)) for name, s in data.sets.items()}
    p = tasks.probe(split["train"], split["valid"], split["test"], seed=seed)
    out.probe = p.selection
    out.metrics |= {"probe_accuracy": p.accuracy, "probe_macro_f1": p.macro_f1}
    test = data.sets["test"]
    nb = tasks.neighbours(X["test"], test.labels, k)
    out.metrics |= {"label_p_at_k": nb.p_at_k, "label_mrr": nb.mrr}
    out.metrics |= _topics(X["test"], test.topics, k, seed)
    out.metrics["label_v_measure"] = tasks.v_measure(X["test"], test.labels, seed)
    if pair_vectors is not None and data.pairs is not None:
        kind, value = tasks.pair_score(*pair_vectors, data.pairs.scores)
        out.metrics[f"pairs_{kind}"] = value
    if "ood" in split:
        out.metrics["ood_accuracy"] = tasks.score(p.model, split["ood"])[0]
    return out


def _vectors(model: Model, texts: list[str], what: str, sources: dict[str, str]) -> Matrix:
    """The texts' vectors; a text the encoder refuses (no tokens at all) is the data's fault."""
    try:
        return model.vectors(texts)
    except InvalidInput as e:
        raise DataError(f"{what} ({', '.join(sources)}): {e}") from None


def _topics(X: Matrix, topics: list[str] | None, k: int, seed: int) -> dict[str, float]:
    """Topic P@k and V-measure over the texts that have a topic, when two topics or more do."""
    if topics is None:
        return {}
    rows = np.flatnonzero([bool(t) for t in topics])
    tagged = [topics[i] for i in rows]
    if len(set(tagged)) < 2:
        return {}
    Xt = X[rows]
    return {
        "topic_p_at_k": tasks.neighbours(Xt, tagged, k).p_at_k,
        "topic_v_measure": tasks.v_measure(Xt, tagged, seed),
    }


def _pair_vectors(model: Model, pairs: Pairs) -> tuple[Matrix, Matrix]:
    """Each distinct text of the pairs encoded once."""
    texts = list(dict.fromkeys([*pairs.text1, *pairs.text2]))
    at = {t: i for i, t in enumerate(texts)}
    V = _vectors(model, texts, "pairs", pairs.sources)
    return V[[at[t] for t in pairs.text1]], V[[at[t] for t in pairs.text2]]
