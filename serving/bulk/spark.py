"""The same Encoder on Apache Spark: a pandas batch UDF (pyspark.ml.functions.predict_batch_udf).

    from zh_rnn_encoder.bulk.spark import encode_udf
    df.withColumn("vector", encode_udf("/bundles/default", pooling="mean")("text"))

Each Python worker loads the bundle once (the path travels, as with Ray) and encodes a batch of
texts per call. Install the `spark` extra; Spark needs a JRE (17 or later).
"""

from __future__ import annotations

import numpy as np


def encode_udf(
    bundle: str,
    batch_size: int = 256,
    threads: int = 1,
    **options: object,
) -> object:
    """A Spark column function: text -> array<float> sentence vector; ``options`` as for
    Encoder.encode (pooling, normalize, truncation, max_tokens)."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    def make_predict() -> object:
        from zh_rnn_encoder import Encoder

        encoder = Encoder.from_bundle(bundle, threads=threads)

        def predict(texts: np.ndarray) -> np.ndarray:
            return np.stack([e.vector for e in encoder.encode(list(texts), **options)])

        return predict

    return predict_batch_udf(
        make_predict, return_type=ArrayType(FloatType()), batch_size=batch_size
    )
