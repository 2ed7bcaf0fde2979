"""The same Encoder on Apache Spark: a pandas batch UDF (pyspark.ml.functions.predict_batch_udf).

    from zh_rnn_encoder.bulk.spark import encode_udf
    df.withColumn("vector", encode_udf("/bundles/default", pooling="mean")("text"))

Each Python worker loads the bundle once (the path travels, as with Ray) and encodes a batch of
texts per call. Install the `spark` extra; Spark needs a JRE (17 or later).

On one machine, ``local_session()`` is a Spark that binds and connects on 127.0.0.1 only: by
default a local Spark binds its driver and block manager to the address of the host's name.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict, Unpack

import numpy as np

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


def encode_udf(
    bundle: str,
    batch_size: int = 256,
    threads: int = 1,
    **options: Unpack[UdfOptions],
) -> Callable[..., Column]:
    """A Spark column function: text -> array<float> sentence vector; ``options`` as for
    Encoder.encode (pooling, normalize, truncation, max_tokens)."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    def make_predict() -> Callable[[np.ndarray], np.ndarray]:
        from zh_rnn_encoder.runtime.encoder import Encoder

        encoder = Encoder.from_bundle(bundle, threads=threads)

        def predict(texts: np.ndarray) -> np.ndarray:
            return np.stack([e.vector for e in encoder.encode(list(texts), **options)])

        return predict

    return predict_batch_udf(
        make_predict, return_type=ArrayType(FloatType()), batch_size=batch_size
    )
