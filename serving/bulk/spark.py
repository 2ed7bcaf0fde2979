"""The same Encoder on Apache Spark, two ways: ``encode_frame`` (a DataFrame in, the same with a
vector column out, through ``mapInArrow``) and ``encode_udf`` (a column function, through
pyspark.ml.functions.predict_batch_udf).

    from zh_rnn_encoder.bulk.spark import encode_frame, encode_udf
    out = encode_frame(df, "/bundles/default", pooling="mean")  # + vector, model_version

    from pyspark.sql import functions as F
    udf = encode_udf("/bundles/default", pooling="mean")
    df.withColumn("vector", udf("text")).withColumn("model_version", F.lit(udf.model_version))

``encode_frame`` is the faster (1.2-1.5x encode_udf's texts/s on 2 cores, warm, same runs): Arrow
batches go to the Encoder and back without pandas. ``encode_udf`` fits where a column expression
is wanted.

Each Python worker loads the bundle once (the path travels, as with Ray) and encodes a batch of
texts per call, pinned to the version the driver read (``model_version``: the digest of its
bundle.json), so a bundle replaced during a job fails its tasks rather than mixing two versions in
one column. Install the `spark` extra; Spark needs a JRE (17 or later).

On one machine, ``local_session()`` is a Spark that binds and connects on 127.0.0.1 only: by
default a local Spark binds its driver and block manager to the address of the host's name.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

import numpy as np

from zh_rnn_encoder.core.bundle import bundle_digest
from zh_rnn_encoder.core.enums import Pooling, Truncation

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession

    from zh_rnn_encoder.runtime.encoder import Encoder

LOOPBACK = "127.0.0.1"


class UdfOptions(TypedDict, total=False):
    """Encoder.encode's options that a sentence-vector column takes."""

    pooling: Pooling | str | None
    normalize: bool | None
    truncation: Truncation | str
    max_tokens: int


def local_session(cores: int = 2, **conf: str) -> SparkSession:
    """A local SparkSession on loopback only: the driver and the block manager bind to and
    advertise 127.0.0.1 (SPARK_LOCAL_IP for the JVM, spark.driver.host, spark.driver.bindAddress),
    no web UI, and the Python workers run this interpreter (PYSPARK_PYTHON, unless set).
    ``conf`` adds Spark settings (``**{"spark.sql.shuffle.partitions": "2"}``)."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .config("spark.driver.host", LOOPBACK)
        .config("spark.driver.bindAddress", LOOPBACK)
        .config("spark.ui.enabled", "false")
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    # Both read while getOrCreate starts the JVM and the context, so set only meanwhile.
    python = os.environ.get("PYSPARK_PYTHON") or sys.executable
    env = {"SPARK_LOCAL_IP": LOOPBACK, "PYSPARK_PYTHON": python}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return builder.getOrCreate()
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class EncodeUdf:
    """A Spark column function, text -> array<float> sentence vector, and ``model_version``: the
    version of the model behind every vector it makes (the hex sha256 of the bundle's
    bundle.json, as the server's responses carry it)."""

    def __init__(self, column: Callable[..., Column], model_version: str) -> None:
        self._column, self.model_version = column, model_version

    def __call__(self, *cols: Column | str) -> Column:
        return self._column(*cols)


def encode_udf(
    bundle: str,
    batch_size: int = 256,
    threads: int = 1,
    **options: Unpack[UdfOptions],
) -> EncodeUdf:
    """text -> sentence vector on Spark; ``options`` as for Encoder.encode (pooling, normalize,
    truncation, max_tokens). Every worker loads ``bundle`` pinned to the version read here."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    version = bundle_digest(Path(bundle))

    def make_predict() -> Callable[[np.ndarray], np.ndarray]:
        from zh_rnn_encoder.runtime.encoder import Encoder

        encoder = Encoder.from_bundle(bundle, threads=threads, expect_bundle_sha256=version)

        def predict(texts: np.ndarray) -> np.ndarray:
            return np.stack([e.vector for e in encoder.encode(list(texts), **options)])

        return predict

    column = predict_batch_udf(
        make_predict, return_type=ArrayType(FloatType()), batch_size=batch_size
    )
    return EncodeUdf(column, version)


@functools.cache
def worker_encoder(bundle: str, threads: int, version: str) -> Encoder:
    """One Encoder per Python worker and bundle version, kept across tasks (Spark reuses its
    Python workers) for the worker's life, where a plain mapInArrow function would load and
    self-test the bundle once a task. (encode_udf loads per UDF instance, as predict_batch_udf
    caches it: a UDF made after its bundle was replaced then fails on the pin; sharing this cache
    would hand it the version an earlier UDF loaded instead.)"""
    from zh_rnn_encoder.runtime.encoder import Encoder

    return Encoder.from_bundle(bundle, threads=threads, expect_bundle_sha256=version)


def encode_frame(
    df: DataFrame,
    bundle: str,
    text_col: str = "text",
    vector_col: str = "vector",
    version_col: str | None = "model_version",
    threads: int = 1,
    error_col: str | None = None,
    **options: Unpack[UdfOptions],
) -> DataFrame:
    """``df`` with each text's sentence vector (array<float>) in ``vector_col`` and, unless None,
    the model version in ``version_col`` (the hex sha256 of the bundle's bundle.json, as
    encoder-bulk writes it); every other column kept. ``options`` as for Encoder.encode. Each
    Python worker loads ``bundle`` once, pinned to the version read here, and encodes every Arrow
    batch Spark hands it in one call.

    A text the Encoder refuses (empty, too long, not a string...) fails the task, naming it; with
    ``error_col``, its row is kept instead, with a null vector and the reason in ``error_col``
    (null for the rows encoded), as encoder-bulk writes errors-*.jsonl (bulk/rows.py)."""
    from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

    version = bundle_digest(Path(bundle))
    vector_type = ArrayType(FloatType(), False)
    fields = [*df.schema.fields, StructField(vector_col, vector_type, error_col is not None)]
    if version_col:
        fields.append(StructField(version_col, StringType(), False))
    if error_col:
        fields.append(StructField(error_col, StringType(), True))

    def encode(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        from zh_rnn_encoder.bulk.rows import encode_rows

        encoder = worker_encoder(bundle, threads, version)
        dim = encoder.output_dim
        for batch in batches:
            texts = batch.column(text_col).to_pylist()
            if error_col:
                encoded, reasons = encode_rows(encoder, texts, dict(options))
            else:
                for t in texts:
                    if not isinstance(t, str):
                        raise ValueError(f"{text_col}: {t!r} is not a string; filter such rows out")
                encoded, reasons = list(encoder.encode(texts, **options) if texts else []), []
            got = [e.vector for e in encoded if e is not None]
            flat = np.concatenate(got) if got else np.zeros(0)
            # a refused row's list is null: a null offset (Arrow's ListArray.from_arrays)
            ends = np.cumsum([0] + [dim if e is not None else 0 for e in encoded])
            offsets = pa.array(
                [int(x) if k == len(encoded) or encoded[k] is not None else None
                 for k, x in enumerate(ends)],
                pa.int32(),
            )  # fmt: skip
            vectors = pa.ListArray.from_arrays(offsets, flat.astype(np.float32))
            columns, names = [*batch.columns, vectors], [*batch.schema.names, vector_col]
            if version_col:
                columns.append(pa.array([version] * len(texts), pa.string()))
                names.append(version_col)
            if error_col:
                columns.append(pa.array(reasons, pa.string()))
                names.append(error_col)
            yield pa.RecordBatch.from_arrays(columns, names=names)

    return df.mapInArrow(encode, StructType(fields))
