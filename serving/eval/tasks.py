"""The tasks' metrics on plain arrays: probe, neighbours, clustering, pair scores.

A feature matrix is dense (float [N, F]) or a SciPy sparse matrix (TF-IDF); labels are strings.
Nothing here knows about bundles or files, so each metric is tested on data with known answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score, v_measure_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

SEED = 0
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
KMEANS_N_INIT = 10
MAX_ITER = 2000
# Queries ranked at once: bounds the similarity block at BLOCK x N floats.
BLOCK = 1024


@dataclass(frozen=True)
class Split:
    """One split's features and labels."""

    X: np.ndarray | sparse.spmatrix
    y: np.ndarray  # str [N]


@dataclass(frozen=True)
class Selection:
    c: float
    valid_accuracy: dict[float, float]  # every C of the grid -> its accuracy on validation


@dataclass(frozen=True)
class Probe:
    selection: Selection
    model: Pipeline  # fitted on train with the selected C
    accuracy: float  # on test
    macro_f1: float


@dataclass(frozen=True)
class Neighbours:
    p_at_k: float  # mean share of the k nearest that share the query's label
    mrr: float  # mean reciprocal rank of the nearest that shares it


def classifier(c: float, X: np.ndarray | sparse.spmatrix, seed: int = SEED) -> Pipeline:
    """Logistic regression; dense features standardised first. Sparse TF-IDF is left as it is:
    scaling each n-gram by its spread would blow up the rare ones."""
    lr = LogisticRegression(C=c, max_iter=MAX_ITER, random_state=seed)
    return make_pipeline(lr) if sparse.issparse(X) else make_pipeline(StandardScaler(), lr)


def choose_c(
    train: Split, valid: Split, grid: Sequence[float] = C_GRID, seed: int = SEED
) -> Selection:
    """The C with the best validation accuracy (the smallest on a tie). Sees no test data."""
    scores = {}
    for c in grid:
        model = classifier(c, train.X, seed).fit(train.X, train.y)
        scores[float(c)] = float(accuracy_score(valid.y, model.predict(valid.X)))
    best = max(scores.values())
    return Selection(min(c for c, s in scores.items() if s == best), scores)


def probe(
    train: Split, valid: Split, test: Split, grid: Sequence[float] = C_GRID, seed: int = SEED
) -> Probe:
    """Fit on train with the C chosen on validation, then score once on test."""
    sel = choose_c(train, valid, grid, seed)
    model = classifier(sel.c, train.X, seed).fit(train.X, train.y)
    acc, f1 = score(model, test)
    return Probe(sel, model, acc, f1)


def score(model: Pipeline, split: Split) -> tuple[float, float]:
    """(accuracy, macro-F1) of a fitted probe on a split."""
    pred = model.predict(split.X)
    return float(accuracy_score(split.y, pred)), float(f1_score(split.y, pred, average="macro"))


def unit_rows(X: np.ndarray | sparse.spmatrix) -> np.ndarray | sparse.csr_matrix:
    """Rows scaled to length 1 (zero rows stay zero), so a dot product is the cosine."""
    if sparse.issparse(X):
        X = sparse.csr_matrix(X, dtype=np.float64)
        norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
        return sparse.diags(1 / np.where(norms > 0, norms, 1)) @ X
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1)


def neighbours(X: np.ndarray | sparse.spmatrix, labels: Sequence[str], k: int) -> Neighbours:
    """Same-label P@k and MRR, each text a query against all the others, by cosine similarity.

    Ties keep the order of the texts (a stable sort), so the result is deterministic."""
    y = np.asarray(labels)
    n = len(y)
    if n < 2:
        raise ValueError("neighbours need two texts or more")
    k = min(k, n - 1)
    U = unit_rows(X)
    hits, rr = [], []
    for start in range(0, n, BLOCK):
        rows = np.arange(start, min(start + BLOCK, n))
        sims = U[rows] @ U.T
        sims = np.asarray(sims.todense() if sparse.issparse(sims) else sims)
        sims[np.arange(len(rows)), rows] = -np.inf  # a text is not its own neighbour
        order = np.argsort(-sims, axis=1, kind="stable")[:, : n - 1]
        same = y[order] == y[rows, None]
        hits.append(same[:, :k].mean(axis=1))
        first = same.argmax(axis=1)
        rr.append(np.where(same.any(axis=1), 1 / (first + 1), 0.0))
    return Neighbours(float(np.concatenate(hits).mean()), float(np.concatenate(rr).mean()))


def v_measure(X: np.ndarray | sparse.spmatrix, labels: Sequence[str], seed: int = SEED) -> float:
    """k-means on unit rows (k = number of labels, fixed seed and restarts) against the labels."""
    k = len(set(labels))
    km = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed)
    return float(v_measure_score(labels, km.fit_predict(unit_rows(X))))


def pair_score(
    a: np.ndarray | sparse.spmatrix, b: np.ndarray | sparse.spmatrix, scores: np.ndarray
) -> tuple[str, float]:
    """Cosine of each pair against its score: ("auc", ROC AUC) for 0/1 scores, else
    ("spearman", rank correlation)."""
    cos = cosines(a, b)
    if np.isin(scores, (0.0, 1.0)).all():
        return "auc", float(roc_auc_score(scores.astype(int), cos))
    rho = spearmanr(cos, scores).statistic
    return "spearman", float(rho) if np.isfinite(rho) else 0.0


def cosines(a: np.ndarray | sparse.spmatrix, b: np.ndarray | sparse.spmatrix) -> np.ndarray:
    """Row-wise cosine similarity of two matrices of the same shape -> float64 [N]."""
    Ua, Ub = unit_rows(a), unit_rows(b)
    both = Ua * Ub if isinstance(Ua, np.ndarray) else Ua.multiply(Ub)
    return np.asarray(both.sum(axis=1)).ravel()
