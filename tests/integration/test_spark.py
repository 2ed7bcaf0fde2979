"""The Spark recipe, run: a local Spark session (on loopback, its Python workers on this
interpreter) encodes with encode_udf, as the Encoder does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support.samples import SMALL, TEXTS
from zh_rnn_encoder import Encoder
from zh_rnn_encoder.bulk.spark import encode_frame, encode_udf, local_session
from zh_rnn_encoder.core.bundle import bundle_digest

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


def test_every_vector_is_of_the_version_read_at_the_start(spark, bundle_factory, tmp_path) -> None:
    """udf.model_version is the bundle's digest; a bundle replaced before the workers load it
    fails the job rather than mixing versions in one column."""
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_factory(cell="gru", **SMALL)[0], bundle)
    udf = encode_udf(str(bundle), batch_size=32)
    assert udf.model_version == bundle_digest(bundle)
    from pyspark.sql import functions as F

    df = spark.createDataFrame([(i, TEXTS[i % len(TEXTS)]) for i in range(8)], ["id", "text"])
    out = df.withColumn("vector", udf("text")).withColumn("v", F.lit(udf.model_version))
    assert {r["v"] for r in out.collect()} == {bundle_digest(bundle)}

    stale = encode_udf(str(bundle), batch_size=32)
    manifest = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    manifest["created"] = "2000-01-01T00:00:00+00:00"  # a re-export: another version
    (bundle / "bundle.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(Exception, match="sha256") as e:
        df.withColumn("vector", stale("text")).collect()
    assert f"expected {stale.model_version[:16]}" in str(e.value)  # the pin names the version


def test_encode_frame_adds_vectors_and_version_and_keeps_every_column(
    spark, bundle_factory, jieba_cache
) -> None:
    bundle = str(bundle_factory(cell="gru", **SMALL)[0])
    rows = [(i, TEXTS[i % len(TEXTS)], i * 2) for i in range(150)]
    df = spark.createDataFrame(rows, ["id", "body", "other"]).repartition(3)
    out = encode_frame(df, bundle, text_col="body", pooling="mean", normalize=True)
    assert out.columns == ["id", "body", "other", "vector", "model_version"]
    got = {r["id"]: r for r in out.collect()}
    want = Encoder.from_bundle(bundle, threads=1, jieba_cache_dir=jieba_cache).encode(
        [t for _, t, _ in rows], pooling="mean", normalize=True
    )
    assert len(got) == len(rows)
    for (i, t, o), w in zip(rows, want):
        r = got[i]
        assert (r["body"], r["other"], r["model_version"]) == (t, o, bundle_digest(Path(bundle)))
        assert np.abs(np.array(r["vector"]) - w.vector).max() <= 1e-6
    bare = encode_frame(df, bundle, text_col="body", vector_col="v", version_col=None)
    assert bare.columns == ["id", "body", "other", "v"]
    nulls = spark.createDataFrame([(1, "好"), (2, None)], "id long, text string")
    with pytest.raises(Exception, match="is not a string"):
        encode_frame(nulls, bundle).collect()


def test_encode_frame_keeps_refused_rows_with_their_reason(spark, bundle_factory, jieba_cache):
    """With ``error_col``, a refused text no longer fails the task: its row stays, with a null
    vector and the reason, as encoder-bulk's errors name them; every other row is encoded."""
    bundle = str(bundle_factory(cell="gru", **SMALL)[0])
    texts = [TEXTS[i % len(TEXTS)] for i in range(40)]
    texts[3], texts[4], texts[17] = "", None, "好" * 20_001
    df = spark.createDataFrame(list(enumerate(texts)), "id long, text string").repartition(2)
    out = encode_frame(df, bundle, error_col="error")
    assert out.columns == ["id", "text", "vector", "model_version", "error"]
    got = {r["id"]: r for r in out.collect()}
    assert len(got) == 40
    reasons = {i: r["error"] for i, r in got.items() if r["error"] is not None}
    assert sorted(reasons) == [3, 4, 17] and all(got[i]["vector"] is None for i in reasons)
    assert "empty" in reasons[3] and "not a string" in reasons[4]
    assert "max_chars_per_text" in reasons[17]
    enc = Encoder.from_bundle(bundle, threads=1, jieba_cache_dir=jieba_cache)
    ok = [i for i in range(40) if i not in reasons]
    want = enc.encode([texts[i] for i in ok])
    for i, w in zip(ok, want):
        assert np.abs(np.array(got[i]["vector"]) - w.vector).max() <= 1e-6
