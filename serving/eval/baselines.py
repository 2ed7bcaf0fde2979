"""The baselines: TF-IDF over the bundle's jieba words, and the mean of its word vectors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from zh_rnn_encoder.core.errors import BundleError
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.core.vocab import Vocab

# How export/ names the word table (native_ops.py, scan_rnn.py) ...
EMBEDDING = "embedding"
# ... and, for a plain RNN whose first layer it folds (scan_rnn.py), the tables E W_ih^T + b of
# the forward and backward directions, which replace it.
FOLDED = ("l0_table", "l0_reverse_table")


class Tokens:
    """Each text segmented once by the bundle's tokenizer, shared by both baselines."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._seen: dict[str, list[str]] = {}

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        seen, cut = self._seen, self._tokenizer.tokenize
        return [seen[t] if t in seen else seen.setdefault(t, cut(t)) for t in texts]


def terms(tokens: list[str]) -> list[str]:
    """Words and word bigrams, lower case, whitespace tokens left out."""
    words = [t.lower() for t in tokens if not t.isspace()]
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


class Tfidf:
    """TF-IDF of 1-2-grams of jieba words (sublinear tf), fitted on the train split only."""

    kind = "baseline"

    def __init__(self, tokens: Tokens, train_texts: Sequence[str], name: str = "tfidf") -> None:
        self.name, self._tokens = name, tokens
        self._vectorizer = TfidfVectorizer(analyzer=terms, sublinear_tf=True, dtype=np.float32)
        self._vectorizer.fit(tokens(train_texts))
        self.about = (
            f"TF-IDF of jieba 1-2-grams, sublinear tf, {len(self._vectorizer.vocabulary_)} "
            "terms from train"
        )

    def vectors(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return self._vectorizer.transform(self._tokens(texts))


class WordMean:
    """The mean of a bundle's word vectors over each text's token ids, unknown words included."""

    kind = "baseline"

    def __init__(
        self, table: np.ndarray, vocab: Vocab, tokens: Tokens, about: str, name: str = "word-mean"
    ) -> None:
        self.name, self.about = name, about
        self._table, self._vocab, self._tokens = table, vocab, tokens

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [N, D]: a sparse averaging matrix [N, V] times the table [V, D]."""
        ids = [self._vocab.encode(t) for t in self._tokens(texts)]
        lengths = np.array([len(i) for i in ids])
        rows = np.repeat(np.arange(len(ids)), lengths)
        weights = np.repeat(1 / np.maximum(lengths, 1), lengths)
        cols = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        mean = sparse.csr_matrix((weights, (rows, cols)), shape=(len(ids), len(self._table)))
        return np.asarray(mean @ self._table, dtype=np.float32)


def word_table(graph: Path, vocab_size: int, embedding_dim: int) -> tuple[np.ndarray, str]:
    """(table float32 [vocab_size, D], what it is) read from a bundle's model.onnx.

    The embedding when the graph holds it; for a plain RNN whose export folded it into the
    first layer, that layer's tables E W_ih^T + b (forward, then backward) side by side: an
    affine image of the embedding, the closest the graph keeps."""
    import onnx
    from onnx import numpy_helper

    inits = {t.name: t for t in onnx.load(str(graph)).graph.initializer}
    shape = (vocab_size, embedding_dim)
    by_shape = sorted(n for n, t in inits.items() if tuple(t.dims) == shape)
    name = EMBEDDING if EMBEDDING in by_shape else None
    folded = [n for n in FOLDED if n in inits and tuple(inits[n].dims)[:1] == (vocab_size,)]
    if name is None and not folded and by_shape:
        name = by_shape[0]
    if name is not None:
        return numpy_helper.to_array(inits[name]).astype(np.float32), f"{name} {list(shape)}"
    if folded:
        table = np.concatenate([numpy_helper.to_array(inits[n]) for n in folded], axis=1)
        return table.astype(np.float32), f"{' + '.join(folded)} (E W_ih^T + b, folded by export)"
    raise BundleError(
        graph.parent,
        [f"{graph.name}: no word table: no initializer {EMBEDDING!r} or of shape {list(shape)}"],
    )
