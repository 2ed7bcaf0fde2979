"""Bulk encoding on Ray Data: read -> map_batches(EncodeAndWrite) -> Parquet parts, exactly once.

Each actor loads the bundle once (a path travels, never a session), with onnxruntime threads set
to its CPU share, encodes a batch and writes it as one Parquet part named by the digest of its
ids, atomically (temporary file, then rename). A rerun into the same directory first reads the
ids already written and encodes only the others: after a crash, the missing rows are completed,
none is written twice. Bad rows (not a string, empty, over a limit) go to errors-*.jsonl with
the reason; the job does not stop for them.

Every row carries the model_version that made its vector (the hex sha256 of the bundle's
bundle.json; every actor loads the bundle pinned to it), and a job refuses to add rows to an
output that holds another version's, unless allow_mixed_versions: vectors of two versions are not
comparable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zh_rnn_encoder.bulk.output import VERSION_COLUMN, check_versions, write_atomic, written_ids
from zh_rnn_encoder.bulk.rows import encode_rows
from zh_rnn_encoder.core.bundle import bundle_digest
from zh_rnn_encoder.core.enums import Pooling, Truncation
from zh_rnn_encoder.runtime.encoder import EncodeOptions, Encoder, TextEncoding
from zh_rnn_encoder.runtime.limits import Limits

if TYPE_CHECKING:
    from ray.data import Dataset

FORMATS = ("jsonl", "parquet", "text")
LOOPBACK = "127.0.0.1"
# A local run keeps Ray on loopback with Ray's own switch for a machine that is no cluster node:
# set to 0, Ray takes 127.0.0.1 as the node's address (as it does on macOS and Windows), and the
# GCS, the raylet (node and object manager), every worker's gRPC server and the agents bind to it
# and reach each other through it. On Linux Ray otherwise takes the LAN address and binds its gRPC
# servers to every interface; `_node_ip_address="127.0.0.1"` alone does not help, Ray rewrites it
# to the LAN address (ray._private.services.resolve_ip_for_localhost). Ray reads the variable when
# it is imported; every process it starts inherits it.
LOCAL_ONLY = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@dataclass(frozen=True)
class BulkJob:
    bundle: str
    input: str
    output: str
    format: str = ""  # from the input's suffix when empty
    text_field: str = "text"
    id_field: str = "id"
    pooling: str | None = None  # None: the bundle's declared default
    normalize: bool | None = None
    truncation: str = "none"
    max_tokens: int = 0
    keep_tokens: bool = False  # also write tokens and their ids
    batch_size: int = 1024  # texts per call of the Encoder, and per Parquet part
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    device: str = "cpu"
    allow_mixed_versions: bool = False  # add rows to an output that holds another version's
    model_version: str = ""  # what every actor's bundle.json must hash to; "": the driver's read

    def input_format(self) -> str:
        if self.format:
            return self.format
        suffix = Path(self.input).suffix.lower()
        return {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}.get(suffix, "text")


class EncodeAndWrite:
    """The Ray actor: one Encoder per actor, one Parquet part per batch."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = BulkJob(**job)
        j = self.job
        pooling = None if j.pooling is None else Pooling.parse(j.pooling, "pooling")
        truncation = Truncation.parse(j.truncation, "truncation")
        self.options = EncodeOptions(pooling, j.normalize, truncation, j.max_tokens)
        self.encoder = Encoder.from_bundle(
            j.bundle,
            j.device,
            max(1, int(j.cpus_per_actor)),
            limits=Limits(),
            expect_bundle_sha256=j.model_version,  # the version the driver checked the output for
        )
        self.out = Path(j.output)

    def __call__(self, batch: pa.Table) -> dict[str, list[int]]:
        ids, texts = batch.column("id"), batch.column("text").to_pylist()
        o = asdict(self.options) | {"token_vectors": False}
        encoded, reasons = encode_rows(self.encoder, texts, o)
        errors = [{"id": ids[k].as_py(), "error": r} for k, r in enumerate(reasons) if r]
        kept = [k for k, e in enumerate(encoded) if e is not None]
        encodings = [e for e in encoded if e is not None]
        names = json.dumps([str(i) for i in ids.to_pylist()]).encode()
        digest = hashlib.sha1(names).hexdigest()[:20]
        if encodings:
            table = self._table(ids.take(kept), encodings)
            write_atomic(self.out / f"part-{digest}.parquet", table)
        if errors:
            body = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)
            write_atomic(self.out / f"errors-{digest}.jsonl", body.encode())
        return {"rows": [len(encodings)], "errors": [len(errors)]}

    def _table(self, ids: pa.ChunkedArray, encodings: list[TextEncoding]) -> pa.Table:
        dim, n = self.encoder.output_dim, len(encodings)
        vectors = np.stack([e.vector for e in encodings]).astype(np.float32, copy=False)
        cols = {
            "id": ids,
            "vector": pa.FixedSizeListArray.from_arrays(vectors.ravel(), dim),
            "token_count": pa.array([len(e.ids) for e in encodings], pa.int32()),
            VERSION_COLUMN: pa.array([self.encoder.bundle.digest] * n, pa.string()),
        }
        if self.job.keep_tokens:
            cols["tokens"] = pa.array([e.tokens for e in encodings], pa.list_(pa.string()))
            cols["token_ids"] = pa.array([e.ids.tolist() for e in encodings], pa.list_(pa.int64()))
        return pa.table(cols)


def local_files(job: BulkJob) -> list[Path] | None:
    """The input's files as Ray reads them (a file, or those of a directory, sorted), for what
    the driver checks and sizes before Ray starts; None for an input it cannot open (a URI)."""
    path = Path(job.input)
    if "://" in job.input or not path.exists():
        return None
    if path.is_file():
        return [path]
    pattern = "*.parquet" if job.input_format() == "parquet" else "*.json*"  # .jsonl, .json.gz
    return sorted(f for f in path.rglob(pattern) if f.is_file())


def check_fields(job: BulkJob) -> None:
    """ValueError naming the field when the input lacks the id or text field, read from the
    first file's schema (Parquet) or first record (JSONL) by the driver, before Ray starts: asking
    the Dataset for its schema would run a whole read task. Inputs the driver cannot open (a URI)
    are left to Ray, which fails the job on the missing column."""
    fmt, files = job.input_format(), local_files(job)
    if fmt == "text" or not files:
        return
    first = files[0]
    if fmt == "parquet":
        names = set(pq.read_schema(first).names)
    else:
        with first.open(encoding="utf-8", errors="replace") as f:
            line = next((x for x in f if x.strip()), "{}")
        try:
            names = set(json.loads(line))
        except ValueError as e:
            raise ValueError(f"{first}: line 1 is not a JSON object ({e})") from None
    missing = sorted({job.id_field, job.text_field} - names)
    if missing:
        raise ValueError(f"{job.input}: no field {missing[0]!r} (see --id-field, --text-field)")


BATCHES_PER_BLOCK = 16
BLOCKS_PER_ACTOR = 4


@dataclass(frozen=True)
class Layout:
    """How the input is cut into blocks, what Ray hands an actor at a time (one task each). The
    actors finish together only if the blocks are small beside the job: Ray's own choice for one
    JSONL file was 7 blocks at 100,000 rows, one actor encoding 57 % of them, and the file was
    parsed whole before its first block went out (1 s at 400,000 rows, the actors idle). Nor
    too small: a task costs Ray tens of milliseconds to hand out on 2 cores, and blocks of 4
    batches of 1,024 left one actor idle 7 s of 27 (16: 1.5 s of 23)."""

    blocks: int | None  # about BATCHES_PER_BLOCK batches each, BLOCKS_PER_ACTOR per actor at least
    block_bytes: int | None  # the reader's chunk: a JSONL file is read and sent on in these

    @classmethod
    def of(cls, job: BulkJob, rows: int | None = None) -> Layout:
        """Rows are counted for a text file (``rows``), read from Parquet's footers and
        estimated for JSONL from its first 64 KiB; Ray's choice for inputs the driver cannot
        open (a URI)."""
        size = None
        if rows is None:
            files = local_files(job)
            if not files:
                return cls(None, None)
            size = sum(f.stat().st_size for f in files)
            if job.input_format() == "parquet":
                rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            else:
                with files[0].open("rb") as f:
                    head = f.read(1 << 16)
                rows = int(size * max(1, head.count(b"\n")) / max(1, len(head)))
        per_block = BATCHES_PER_BLOCK * job.batch_size
        blocks = max(-(-rows // per_block), BLOCKS_PER_ACTOR * job.actors)
        block_bytes = max(1 << 16, size * per_block // rows) if size and rows else None
        return cls(blocks, block_bytes)


def read(job: BulkJob) -> Dataset:
    """The input as a Ray Dataset of (id, text); check_fields has checked the fields."""
    import ray

    fmt = job.input_format()
    if fmt == "text":  # the line number is the id, so the lines are numbered here, in order
        lines = Path(job.input).read_text(encoding="utf-8").splitlines()
        items = [{"id": n, "text": t} for n, t in enumerate(lines, 1)]
        return ray.data.from_items(items, override_num_blocks=Layout.of(job, len(items)).blocks)
    layout = Layout.of(job)
    if layout.block_bytes and fmt == "jsonl":  # the JSONL reader's chunk is Ray's block size
        ray.data.DataContext.get_current().target_max_block_size = layout.block_bytes
    if fmt == "jsonl":
        ds = ray.data.read_json(job.input, lines=True, override_num_blocks=layout.blocks)
    else:
        columns = [job.id_field, job.text_field]
        ds = ray.data.read_parquet(job.input, columns=columns, override_num_blocks=layout.blocks)
    names = {job.id_field: "id", job.text_field: "text"}
    return ds.select_columns(list(names)).rename_columns(names)


@contextmanager
def _loopback_ray() -> Iterator[None]:
    """The environment of a local Ray that binds and connects on 127.0.0.1 only (LOCAL_ONLY)."""
    name, value = LOCAL_ONLY
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None and getattr(constants, "ENABLE_RAY_CLUSTER", False):
        raise RuntimeError(
            f"a local run must start Ray on 127.0.0.1, but ray was imported without {name}="
            f"{value}; set it before importing ray, or pass the address of a cluster"
        )
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _start_ray(job: BulkJob, address: str | None) -> None:
    """ray.init: the cluster at ``address`` as Ray has it, else a new local Ray on loopback."""
    import ray

    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        return
    # A local Ray gets a CPU more than the actors take, for reading and summing. "local": never
    # attach to another Ray that `ray start` left on this machine.
    cpus = max(os.cpu_count() or 1, int(job.actors * job.cpus_per_actor) + 1)
    ray.init(
        address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
        _node_ip_address=LOOPBACK,
    )  # fmt: skip
    node = ray.util.get_node_ip_address()
    if not ipaddress.ip_address(node).is_loopback:
        ray.shutdown()
        raise RuntimeError(f"the local Ray took {node} as its address, not {LOOPBACK}")


def run(job: BulkJob, address: str | None = None) -> dict[str, Any]:
    """The whole job on a local Ray (loopback only) or the cluster at ``address`` (or
    RAY_ADDRESS, as Ray reads it); returns the summary."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    with nullcontext() if address else _loopback_ray():
        return _run(job, address)


def _run(job: BulkJob, address: str | None) -> dict[str, Any]:
    import ray

    version = job.model_version or bundle_digest(Path(job.bundle))
    if not version:
        raise FileNotFoundError(f"{job.bundle}: no bundle.json; not a model bundle")
    job = dataclasses.replace(job, model_version=version)
    out = Path(job.output)
    out.mkdir(parents=True, exist_ok=True)
    check_versions(out, version, job.allow_mixed_versions)  # before Ray starts: refused at once
    check_fields(job)
    for stale in out.glob(".*.tmp"):
        stale.unlink()
    t0 = time.perf_counter()
    _start_ray(job, address)
    started = time.perf_counter()
    rows = errs = 0
    first: tuple[float, int] | None = None  # when the first counts came back, and their rows
    try:
        done = written_ids(out)
        ds = read(job)
        if done:
            ds = ds.map_batches(lambda b: b[~b["id"].isin(done)], batch_format="pandas")
        counts = ds.map_batches(
            EncodeAndWrite,
            fn_constructor_kwargs={"job": asdict(job)},
            batch_size=job.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=job.actors),
            num_cpus=job.cpus_per_actor,
            num_gpus=job.gpus_per_actor or None,
        )
        # Summed as the counts stream out, in the driver: Dataset.sum would run an aggregation
        # of its own after the job (2.6 s of 14 at 100,000 rows).
        for b in counts.iter_batches(batch_size=None, batch_format="numpy"):
            rows, errs = rows + int(b["rows"].sum()), errs + int(b["errors"].sum())
            first = first or (time.perf_counter(), rows)
    finally:
        ray.shutdown()
    end = time.perf_counter()
    took = end - started
    # After the first block came back: the actors' pace, without their start and the first
    # block's wait for it (a long job's rate; texts_per_s is this job's)
    first_s, first_rows = (first[0] - started, first[1]) if first else (0.0, 0)
    steady = (rows - first_rows) / (end - first[0]) if first and end > first[0] else 0.0
    size = sum(p.stat().st_size for p in out.glob("part-*.parquet"))
    return {
        "rows": rows,
        "errors": errs,
        "skipped_already_written": len(done),
        "seconds": round(took, 2),
        "ray_start_s": round(started - t0, 2),
        "texts_per_s": round(rows / took, 1) if took else 0.0,
        "first_rows_s": round(first_s, 2),
        "steady_texts_per_s": round(steady, 1),
        "output_mb": round(size / (1 << 20), 2),
        "model_version": version,
    }
