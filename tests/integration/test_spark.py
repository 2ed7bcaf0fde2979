"""The Spark recipe, run: a local Spark session (on loopback, its Python workers on this
interpreter) encodes with encode_udf, as the Encoder does."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.support.samples import SMALL, TEXTS
from zh_rnn_encoder import Encoder
from zh_rnn_encoder.bulk.spark import encode_udf, local_session

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a JRE (java)")


@pytest.fixture(scope="module")
def spark():
    s = local_session(2, **{"spark.sql.shuffle.partitions": "2"})
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


def test_spark_vectors_equal_the_encoder(spark, bundle_factory, jieba_cache) -> None:
    bundle = str(bundle_factory(cell="gru", **SMALL)[0])
    rows = [(i, TEXTS[i % len(TEXTS)]) for i in range(120)]
    df = spark.createDataFrame(rows, ["id", "text"])
    udf = encode_udf(bundle, batch_size=32, pooling="mean", normalize=True)
    got = {r["id"]: np.array(r["vector"]) for r in df.withColumn("vector", udf("text")).collect()}
    want = Encoder.from_bundle(bundle, threads=1, jieba_cache_dir=jieba_cache).encode(
        [t for _, t in rows], pooling="mean", normalize=True
    )
    assert len(got) == len(rows)
    for (i, _), w in zip(rows, want):
        assert np.abs(got[i] - w.vector).max() <= 1e-6
