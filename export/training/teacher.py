"""A classical teacher for ``distill``: TF-IDF (jieba 1-2-grams) + logistic regression.

The teacher's class log-probabilities for every training text come from a model that never saw
that text (out of fold, folds by the split rule's groups, so near-copies never teach
themselves); validation texts get the teacher fitted on all of train. C is chosen on
validation, as encoder-eval chooses the probe's. The student's head then learns the labels and,
weighted by ``distill``, the teacher's softened distribution (Hinton et al.'s knowledge
distillation), which carries what a bag of n-grams knows about each text's uncertainty.

Memory: the teacher holds the training texts (scikit-learn fits in memory), unlike the rest of
training, which streams; ``--teacher`` is for corpora that fit.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.data.split import group_of, key_of

FOLDS = 5
TEACHERS = ("tfidf",)  # --teacher's choices


def soft_labels(
    train: Iterable[tuple[str, str]],
    valid: Iterable[tuple[str, str]],
    classes: list[str],
    tok: Tokenizer,
    seed: int,
) -> dict[str, np.ndarray]:
    """text -> float32 [classes] log-probabilities, for every text of train and valid."""
    from sklearn.model_selection import GroupKFold

    from zh_rnn_encoder.eval import tasks
    from zh_rnn_encoder.eval.baselines import Tfidf, Tokens

    tr_text, tr_y = _unzip(train)
    va_text, va_y = _unzip(valid)
    tokens = Tokens(tok)
    tfidf = Tfidf(tokens, tr_text)
    X, V = tfidf.vectors(tr_text), tfidf.vectors(va_text)
    c = tasks.choose_c(tasks.Split(X, tr_y), tasks.Split(V, va_y), seed=seed).c
    out: dict[str, np.ndarray] = {}
    groups = [group_of(key_of(t)) for t in tr_text]
    for fit_idx, held_idx in GroupKFold(FOLDS).split(X, tr_y, groups):
        # each fold's vocabulary from its own texts: the held-out fold's n-grams stay unseen
        fold = Tfidf(tokens, [tr_text[i] for i in fit_idx])
        Xf = fold.vectors([tr_text[i] for i in fit_idx])
        model = tasks.classifier(c, Xf, seed).fit(Xf, tr_y[fit_idx])
        held = _log_probs(model, fold.vectors([tr_text[i] for i in held_idx]))
        out |= _rows([tr_text[i] for i in held_idx], held, model.classes_, classes)
    model = tasks.classifier(c, X, seed).fit(X, tr_y)
    out |= _rows(va_text, _log_probs(model, V), model.classes_, classes)
    return out


def _log_probs(model, X) -> np.ndarray:
    """log-softmax of the decision function: finite where predict_log_proba gives log(0)."""
    d = np.asarray(model.decision_function(X), dtype=np.float64)
    logits = np.stack([-d / 2, d / 2], axis=1) if d.ndim == 1 else d
    logits = logits - logits.max(1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(1, keepdims=True))


def _unzip(rows: Iterable[tuple[str, str]]) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for text, label in rows:
        texts.append(text)
        labels.append(label)
    return texts, np.asarray(labels)


def _rows(texts: list[str], logp: np.ndarray, order, classes: list[str]) -> dict:
    cols = [list(order).index(c) for c in classes]
    return {t: logp[j, cols].astype(np.float32) for j, t in enumerate(texts)}
