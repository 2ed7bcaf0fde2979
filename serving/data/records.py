"""Labelled text files (JSONL, CSV, Parquet) and plain text, streamed record by record.

Every problem is a ``DataError`` naming the file, the line (or Parquet row) and the field, so a
user fixes their data without reading a traceback. Nothing here holds a whole file in memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

FORMATS = ("jsonl", "csv", "parquet", "text")
_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
PARQUET_BATCH_ROWS = 1024
Row: TypeAlias = dict[str, Any]  # one record as read, its fields unchecked


class DataError(ValueError):
    """A data file that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str  # "" for unlabelled text
    where: str  # "file:line", for messages


@dataclass(frozen=True)
class Fields:
    """Which fields hold the text and the label (``label=""``: unlabelled)."""

    text: str = "text"
    label: str = "label"


def format_of(path: Path, fmt: str = "") -> str:
    if fmt:
        if fmt not in FORMATS:
            raise DataError(f"{path}: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    return _SUFFIXES.get(Path(path).suffix.lower(), "text")


def read(path: Path | str, fields: Fields = Fields(), fmt: str = "") -> Iterator[Example]:
    """The file's examples in order. Plain text is one unlabelled text a line."""
    path = Path(path)
    kind = format_of(path, fmt)
    if kind == "text" and fields.label:
        raise DataError(f"{path}: plain text has no labels; give JSONL, CSV or Parquet")
    rows = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet, "text": _text}[kind](path)
    try:
        for where, row in rows:
            yield _example(row, fields, where)
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None


def rows(path: Path | str, fmt: str = "") -> Iterator[tuple[str, Row]]:
    """("file:line", row) of a JSONL, CSV or Parquet file, unchecked (for other fields)."""
    path = Path(path)
    kind = format_of(path, fmt)
    if kind == "text":
        raise DataError(f"{path}: expected a .jsonl, .csv or .parquet file")
    try:
        yield from {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}[kind](path)
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None


def _example(row: Row, fields: Fields, where: str) -> Example:
    text = _field(row, fields.text, where)
    if not text.strip():
        raise DataError(f"{where}: field {fields.text!r} is empty")
    label = _field(row, fields.label, where) if fields.label else ""
    if fields.label and not label.strip():
        raise DataError(f"{where}: field {fields.label!r} is empty")
    return Example(text, label.strip(), where)


def _field(row: Row, name: str, where: str) -> str:
    if name not in row or row[name] is None:
        raise DataError(f"{where}: field {name!r} is missing")
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    return str(value)


def _lines(path: Path) -> Iterator[tuple[str, str]]:
    """Each line decoded on its own, so undecodable bytes are reported with their line."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: not UTF-8 (byte {e.start} of the line)") from None
            yield f"{path}:{n}", line


def _text(path: Path) -> Iterator[tuple[str, Row]]:
    for where, line in _lines(path):
        if line.strip():
            yield where, {"text": line.rstrip("\r\n")}


def _jsonl(path: Path) -> Iterator[tuple[str, Row]]:
    for where, line in _lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not JSON: {e.msg}") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        yield where, row


def _csv(path: Path) -> Iterator[tuple[str, Row]]:
    lines = _lines(path)
    reader = csv.DictReader(line for _, line in lines)
    try:
        for row in reader:
            yield f"{path}:{reader.line_num}", row
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: bad CSV: {e}") from None


def _parquet(path: Path) -> Iterator[tuple[str, Row]]:
    import pyarrow.parquet as pq  # only for Parquet input

    try:
        table = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own types for a file that is not Parquet
        raise DataError(f"{path}: not a Parquet file: {e}") from None
    n = 0
    for batch in table.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            n += 1
            yield f"{path}:row {n}", row
