"""The same Encoder on Apache Spark: a pandas batch UDF (pyspark.ml.functions.predict_batch_udf).

    from pyspark.sql import functions as F
    from zh_rnn_encoder.bulk.spark import encode_udf
    udf = encode_udf("/bundles/default", pooling="mean")
    df.withColumn("vector", udf("text")).withColumn("model_version", F.lit(udf.model_version))

Each Python worker loads the bundle once (the path travels, as with Ray) and encodes a batch of
texts per call, pinned to the version the driver read (``model_version``: the digest of its
bundle.json), so a bundle replaced during a job fails its tasks rather than mixing two versions in
one column. Install the `spark` extra; Spark needs a JRE (17 or later).

On one machine, ``local_session()`` is a Spark that binds and connects on 127.0.0.1 only: by
default a local Spark binds its driver and block manager to the address of the host's name.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

import numpy as np

from zh_rnn_encoder.core.bundle import bundle_digest
from zh_rnn_encoder.core.enums import Pooling, Truncation

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession

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
