"""`make bench-bulk`: encoder-bulk with 1 and 2 actors, and the Spark recipe, against the
in-process Encoder in one process, same run, same rows, same texts per call.

Each bulk run reads the corpus as JSONL and writes Parquet parts. Its rate counts from the moment
its engine has started (Ray's or Spark's start is shown on its own) to the last part: actor start,
bundle load and self-test included. ``steady`` counts from the first block's return to the last:
the pace a long job settles at. The baseline is ``Encoder.encode`` on the same texts in calls of
the same size, one onnxruntime thread, measured before and after the bulk runs (the mean is the
1.00): this machine's speed drifts by 10-20 % over a minute.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import run as bench
from bench.loadgen import load_texts
from zh_rnn_encoder import Encoder


def in_process(bundle: Path, rows: list[str], batch: int) -> float:
    enc = Encoder.from_bundle(bundle, threads=1, jieba_cache_dir=bench.CACHE)
    enc.encode(rows[:batch])
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        enc.encode(rows[i : i + batch])
    return len(rows) / (time.perf_counter() - t0)


def ray_bulk(bundle: Path, inp: Path, out: Path, actors: int, batch: int) -> dict:
    cmd = [str(Path(sys.executable).parent / "encoder-bulk"), "--bundle", str(bundle),
           "--input", str(inp), "--output", str(out), "--actors", str(actors),
           "--batch-size", str(batch)]  # fmt: skip
    r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    bench.log(f"bulk {actors} actors: {r}")
    return r


def spark_bulk(bundle: Path, inp: Path, work: Path, batch: int, cores: int = 2) -> list:
    """Both Spark recipes (docs/bulk.md) on one local Spark: read JSONL, encode, write Parquet."""
    from zh_rnn_encoder.bulk.spark import encode_frame, encode_udf, local_session

    t0 = time.perf_counter()
    # the JSONL cut into 4 partitions per core, as encoder-bulk cuts its blocks
    split = str(max(1 << 20, inp.stat().st_size // (4 * cores)))
    spark = local_session(cores, **{"spark.sql.files.maxPartitionBytes": split})
    spark.sparkContext.setLogLevel("ERROR")
    start = round(time.perf_counter() - t0, 2)
    udf = encode_udf(str(bundle), batch_size=batch)
    recipes = {
        "Spark `encode_frame` (mapInArrow), local[2]": lambda df: encode_frame(df, str(bundle)),
        "Spark `encode_udf` (predict_batch_udf), local[2]": lambda df: df.withColumn(
            "vector", udf("text")
        ),
    }
    best: dict[str, dict] = {}
    try:  # each recipe twice, alternated, the faster kept: the first run of either warms Spark
        for i, (name, recipe) in enumerate([*recipes.items(), *recipes.items()]):
            dest = work / f"spark-{i}"
            started = time.perf_counter()
            recipe(spark.read.json(str(inp))).select("id", "vector").write.parquet(str(dest))
            took = time.perf_counter() - started
            rows = spark.read.parquet(str(dest)).count()
            r = {"rows": rows, "seconds": round(took, 2), "texts_per_s": round(rows / took, 1),
                 "start_s": start}  # fmt: skip
            bench.log(f"{name}: {r}")
            if name not in best or r["texts_per_s"] > best[name]["texts_per_s"]:
                best[name] = r
    finally:
        spark.stop()
    return [(f"{name}, best of 2", r) for name, r in best.items()]


def main() -> int:
    ap = argparse.ArgumentParser(prog="make bench-bulk", description=__doc__)
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--no-spark", action="store_true", help="skip the Spark recipe")
    a = ap.parse_args()
    bench.OUT.mkdir(parents=True, exist_ok=True)
    bundle, _ = bench.build_model("rnn", bench.Tokenizer(cache_dir=bench.CACHE))
    texts = load_texts()
    work = bench.OUT / "bulk"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    inp = work / "in.jsonl"
    rows = [texts[i % len(texts)] for i in range(a.rows)]
    with inp.open("w", encoding="utf-8") as f:
        for i, t in enumerate(rows):
            f.write(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n")
    before = in_process(bundle, rows, a.batch_size)
    runs = [
        (
            f"`encoder-bulk`, {n} actor{'s' * (n > 1)}",
            ray_bulk(bundle, inp, work / f"out-{n}", n, b),
        )
        for n, b in ((1, a.batch_size), (2, a.batch_size))
    ]
    if not a.no_spark and shutil.which("java"):
        runs += spark_bulk(bundle, inp, work, a.batch_size)
    after = in_process(bundle, rows, a.batch_size)
    base = (before + after) / 2
    print(f"{a.rows:,} rows of bench/texts_zh.txt, {a.batch_size} texts per call:\n")
    print("| run | texts/s | vs in-process | steady texts/s | vs in-process | engine start s "
          "| first rows s |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| in-process `Encoder.encode`, 1 thread (before {before:,.0f}, after {after:,.0f}) "
          f"| {base:,.0f} | 1.00 | | | | |")  # fmt: skip
    for name, r in runs:
        tps, steady = r["texts_per_s"], r.get("steady_texts_per_s")
        start = r.get("ray_start_s", r.get("start_s"))
        cells = [f"{tps:,.0f}", f"{tps / base:.2f}",
                 f"{steady:,.0f}" if steady else "", f"{steady / base:.2f}" if steady else "",
                 f"{start}", f"{r.get('first_rows_s', '')}"]  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
