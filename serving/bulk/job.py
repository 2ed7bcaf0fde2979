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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zh_rnn_encoder.core.bundle import bundle_digest
from zh_rnn_encoder.core.enums import Pooling, Truncation
from zh_rnn_encoder.core.errors import InvalidInput
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
VERSION_COLUMN = "model_version"


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
    batch_size: int = 256
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

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[int]]:
        ids, texts = list(batch["id"]), list(batch["text"])
        good, errors = [], []
        for i, t in zip(ids, texts):
            reason = self._invalid(t)
            (errors.append({"id": _plain(i), "error": reason}) if reason else good.append((i, t)))
        encodings = self._encode([t for _, t in good], errors, [i for i, _ in good])
        kept = [(i, e) for (i, _), e in zip(good, encodings) if e is not None]
        digest = hashlib.sha1(json.dumps([str(i) for i in ids]).encode()).hexdigest()[:20]
        if kept:
            _write_atomic(self.out / f"part-{digest}.parquet", self._table(kept))
        if errors:
            body = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)
            _write_atomic(self.out / f"errors-{digest}.jsonl", body.encode())
        return {"rows": [len(kept)], "errors": [len(errors)]}

    def _invalid(self, text: object) -> str | None:
        if not isinstance(text, str):
            return f"text: not a string ({type(text).__name__})"
        try:
            self.encoder.limits.check_texts([text])
        except InvalidInput as e:
            return str(e).replace("texts[0]", "text")
        return None

    def _encode(
        self, texts: list[str], errors: list[dict[str, object]], ids: list[object]
    ) -> Sequence[TextEncoding | None]:
        """The batch in one call; if a text is refused, each alone, so only it is an error."""
        o = asdict(self.options) | {"token_vectors": False}
        try:
            return self.encoder.encode(texts, **o)
        except InvalidInput:
            out: list[TextEncoding | None] = []
            for i, t in zip(ids, texts):
                try:
                    out.append(self.encoder.encode([t], **o)[0])
                except InvalidInput as e:
                    errors.append({"id": _plain(i), "error": str(e).replace("texts[0]", "text")})
                    out.append(None)
            return out

    def _table(self, kept: list[tuple[object, TextEncoding]]) -> pa.Table:
        dim = self.encoder.output_dim
        flat = np.concatenate([e.vector for _, e in kept]).astype(np.float32)
        cols = {
            "id": pa.array([_plain(i) for i, _ in kept]),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat), dim),
            "token_count": pa.array([len(e.ids) for _, e in kept], pa.int32()),
            VERSION_COLUMN: pa.array([self.encoder.bundle.digest] * len(kept), pa.string()),
        }
        if self.job.keep_tokens:
            cols["tokens"] = pa.array([e.tokens for _, e in kept], pa.list_(pa.string()))
            cols["token_ids"] = pa.array([e.ids.tolist() for _, e in kept], pa.list_(pa.int64()))
        return pa.table(cols)


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v


def _write_atomic(path: Path, data: pa.Table | bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        pq.write_table(data, tmp)
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


def read(job: BulkJob) -> Dataset:
    """The input as a Ray Dataset of (id, text)."""
    import ray

    fmt = job.input_format()
    if fmt == "text":  # the line number is the id, so the lines are numbered here, in order
        lines = Path(job.input).read_text(encoding="utf-8").splitlines()
        return ray.data.from_items([{"id": n, "text": t} for n, t in enumerate(lines, 1)])
    if fmt == "jsonl":
        ds = ray.data.read_json(job.input, lines=True)
    else:
        ds = ray.data.read_parquet(job.input, columns=[job.id_field, job.text_field])
    names = {job.id_field: "id", job.text_field: "text"}
    missing = set(names) - set(ds.schema().names)
    if missing:
        raise ValueError(
            f"{job.input}: no field {sorted(missing)[0]!r} (see --id-field, --text-field)"
        )
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
    for stale in out.glob(".*.tmp"):
        stale.unlink()
    t0 = time.perf_counter()
    _start_ray(job, address)
    started = time.perf_counter()
    try:
        done = written_ids(out)
        ds = read(job)
        if done:
            ds = ds.map_batches(lambda b: b[~b["id"].isin(done)], batch_format="pandas")
        counts = (
            ds.map_batches(
                EncodeAndWrite,
                fn_constructor_kwargs={"job": asdict(job)},
                batch_size=job.batch_size,
                batch_format="numpy",
                concurrency=job.actors,
                num_cpus=job.cpus_per_actor,
                num_gpus=job.gpus_per_actor or None,
            ).sum(["rows", "errors"])
            or {}
        )
    finally:
        ray.shutdown()
    took = time.perf_counter() - started
    rows = int(counts.get("sum(rows)", 0)) if counts else 0
    errs = int(counts.get("sum(errors)", 0)) if counts else 0
    size = sum(p.stat().st_size for p in out.glob("part-*.parquet"))
    return {
        "rows": rows,
        "errors": errs,
        "skipped_already_written": len(done),
        "seconds": round(took, 2),
        "ray_start_s": round(started - t0, 2),
        "texts_per_s": round(rows / took, 1) if took else 0.0,
        "output_mb": round(size / (1 << 20), 2),
        "model_version": version,
    }
