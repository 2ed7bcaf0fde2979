"""A bulk job's output directory: Parquet parts and error files written atomically, and what a
rerun reads back from it (the ids already written, the model versions already there)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

VERSION_COLUMN = "model_version"


def write_atomic(path: Path, data: pa.Table | bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        # A dictionary only where it pays: pyarrow tries one on every column by default, and
        # trying it on the float vectors tripled the cost of a part and grew it by half.
        pq.write_table(data, tmp, use_dictionary=[VERSION_COLUMN])
    os.replace(tmp, path)


def written_ids(out: Path) -> set[object]:
    """Ids already in complete parts (a crash leaves only dot-prefixed temporaries)."""
    done: set[object] = set()
    for part in sorted(out.glob("part-*.parquet")):
        done.update(pq.read_table(part, columns=["id"]).column("id").to_pylist())
    for errors in sorted(out.glob("errors-*.jsonl")):
        done.update(json.loads(x)["id"] for x in errors.read_text(encoding="utf-8").splitlines())
    return done


def written_versions(out: Path) -> set[str]:
    """The model versions of the rows already in ``out`` (parts written before rows carried
    one count for none)."""
    found: set[str] = set()
    for part in sorted(out.glob("part-*.parquet")):
        if VERSION_COLUMN in pq.read_schema(part).names:
            column = pq.read_table(part, columns=[VERSION_COLUMN]).column(VERSION_COLUMN)
            found.update(column.unique().to_pylist())
    return found


def check_versions(out: Path, version: str, allow_mixed: bool) -> None:
    """ValueError naming both versions when ``out`` holds rows of a version other than
    ``version``, unless ``allow_mixed``."""
    others = sorted(written_versions(out) - {version})
    if others and not allow_mixed:
        raise ValueError(
            f"{out} holds vectors of model version {', '.join(others)}; this bundle is version "
            f"{version}. Vectors of two versions are not comparable: write to another --output, "
            "or pass --allow-mixed-versions to add these anyway (each row keeps its "
            f"{VERSION_COLUMN})"
        )
