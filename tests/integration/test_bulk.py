"""encoder-bulk on a local Ray: every input format, bad rows, the gRPC server's vectors, and
exactly-once output after the job is killed mid-run and run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support import ROOT
from tests.support.harness import InProcessServer, bulk, finish
from tests.support.samples import OVERFLOWING_AFTER, SMALL
from zh_rnn_encoder.bulk.job import BATCHES_PER_BLOCK, BLOCKS_PER_ACTOR, BulkJob, Layout
from zh_rnn_encoder.client import EncoderClient
from zh_rnn_encoder.core.bundle import bundle_digest

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def bundle(bundle_factory) -> Path:
    return bundle_factory(cell="gru", **SMALL)[0]


@pytest.fixture(scope="module")
def lines() -> list[str]:
    text = (ROOT / "bench" / "texts_zh.txt").read_text(encoding="utf-8")
    return [x for x in text.splitlines() if x.strip()]


def output(out: Path) -> tuple[list, np.ndarray, list[dict]]:
    t = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("part-*.parquet"))])
    vectors = np.stack(t.column("vector").to_numpy(zero_copy_only=False))
    errors = [json.loads(x) for p in out.glob("errors-*.jsonl") for x in p.read_text().splitlines()]
    return t.column("id").to_pylist(), vectors, errors


def test_jsonl_with_bad_rows_equals_the_server(bundle, lines, tmp_path, jieba_cache) -> None:
    rows = [{"doc": f"d{i}", "body": lines[i % len(lines)]} for i in range(600)]
    rows[3]["body"], rows[4]["body"], rows[5]["body"] = "", 42, "好" * 20_001
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    out = tmp_path / "out"
    extra = ["--id-field", "doc", "--text-field", "body", "--pooling", "mean", "--actors", "2"]
    s = finish(bulk(bundle, inp, out, *extra, "--batch-size", "100"))
    assert (s["rows"], s["errors"]) == (597, 3)
    assert 0 < s["first_rows_s"] <= s["seconds"] and s["steady_texts_per_s"] > 0
    ids, vectors, errors = output(out)
    assert sorted(ids + [e["id"] for e in errors]) == sorted(r["doc"] for r in rows)
    reasons = {e["id"]: e["error"] for e in errors}
    assert "empty" in reasons["d3"] and "not a string" in reasons["d4"]
    assert "max_chars_per_text" in reasons["d5"]
    srv = InProcessServer(bundle, jieba_cache).load()
    try:
        with EncoderClient(srv.target) as c:
            pick = [0, 1, 2, 100, 599]
            want = c.encode([rows[i]["body"] for i in pick], pooling="mean")
        got = dict(zip(ids, vectors))
        for i, w in zip(pick, want):
            assert np.abs(got[f"d{i}"] - w.vector).max() <= 1e-6
    finally:
        srv.stop()


def test_a_row_whose_states_overflow_the_model_goes_to_errors(overflowing, tmp_path) -> None:
    """A row on which the model's states leave float32's range (conftest's ``overflowing``) is
    an error named by its id, as any refused row is; its batch's other rows are encoded."""
    bundle, text = overflowing
    rows = [{"id": i, "text": OVERFLOWING_AFTER} for i in range(40)]
    rows[7]["text"] = text
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    s = finish(bulk(bundle, inp, tmp_path / "out", "--actors", "1"))
    assert (s["rows"], s["errors"]) == (39, 1)
    ids, vectors, errors = output(tmp_path / "out")
    assert sorted(ids) == [i for i in range(40) if i != 7] and np.isfinite(vectors).all()
    assert errors[0]["id"] == 7 and "the model's states left float32" in errors[0]["error"]


def test_parquet_and_text_inputs(bundle, lines, tmp_path) -> None:
    pq.write_table(pa.table({"id": list(range(300)), "text": lines[:300]}), tmp_path / "in.parquet")
    s = finish(bulk(bundle, tmp_path / "in.parquet", tmp_path / "p", "--keep-tokens"))
    ids, vectors, _ = output(tmp_path / "p")
    assert s["rows"] == 300 and sorted(ids) == list(range(300)) and vectors.shape == (300, 24)
    t = pq.read_table(next((tmp_path / "p").glob("part-*.parquet")))
    assert {"tokens", "token_ids", "token_count"} <= set(t.column_names)
    (tmp_path / "in.txt").write_text("\n".join(lines[:50]) + "\n", encoding="utf-8")
    s = finish(bulk(bundle, tmp_path / "in.txt", tmp_path / "t"))
    assert s["rows"] == 50 and sorted(output(tmp_path / "t")[0]) == list(range(1, 51))


def test_exactly_once_after_a_kill(bundle, lines, tmp_path) -> None:
    n = 3000
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": i, "text": lines[i % len(lines)]}) + "\n"
                           for i in range(n)))  # fmt: skip
    out = tmp_path / "out"
    p = bulk(bundle, inp, out, "--batch-size", "50", start_new_session=True)
    t0 = time.monotonic()
    while len(list(out.glob("part-*.parquet"))) < 3:
        assert p.poll() is None and time.monotonic() - t0 < 120, "no output before the kill"
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    p.wait(30)
    subprocess.run([BIN / "ray", "stop", "--force"], capture_output=True, timeout=60)
    first = len(output(out)[0])
    assert 0 < first < n
    s = finish(bulk(bundle, inp, out, "--batch-size", "50"))
    ids = output(out)[0]
    assert sorted(ids) == list(range(n)), "every row exactly once"
    assert s["skipped_already_written"] == first and s["rows"] == n - first


def test_rows_keep_their_model_version_and_another_version_is_refused(
    bundle, bundle_factory, lines, tmp_path
) -> None:
    other = bundle_factory(seed=5, cell="gru", **SMALL)[0]
    first, second = tmp_path / "a.txt", tmp_path / "b.jsonl"
    first.write_text("\n".join(lines[:40]) + "\n", encoding="utf-8")
    rows = [{"id": 1000 + i, "text": t} for i, t in enumerate(lines[40:60])]
    second.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    out = tmp_path / "out"
    s = finish(bulk(bundle, first, out))
    a, b = bundle_digest(bundle), bundle_digest(other)
    t = pa.concat_tables([pq.read_table(p) for p in out.glob("part-*.parquet")])
    assert s["model_version"] == a and set(t.column("model_version").to_pylist()) == {a}
    p = bulk(other, second, out)  # another version into the same output: refused before Ray
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and a in err and b in err and "--allow-mixed-versions" in err
    s = finish(bulk(other, second, out, "--allow-mixed-versions"))
    t = pa.concat_tables([pq.read_table(p) for p in out.glob("part-*.parquet")])
    by_version = {v: t.column("model_version").to_pylist().count(v) for v in (a, b)}
    assert s["rows"] == 20 and by_version == {a: 40, b: 20}


def test_a_missing_field_is_refused_before_ray_starts(bundle, tmp_path) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": 1, "body": "好"}\n', encoding="utf-8")
    pq.write_table(pa.table({"key": [1], "text": ["好"]}), tmp_path / "in.parquet")
    for inp, field, flags in (("in.jsonl", "text", []), ("in.parquet", "id", [])):
        t0 = time.monotonic()
        p = bulk(bundle, tmp_path / inp, tmp_path / f"out-{inp}", *flags)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 2 and f"no field '{field}'" in err and "--text-field" in err
        assert "Ray" not in err and time.monotonic() - t0 < 20, "refused before Ray starts"
    p = bulk(bundle, tmp_path / "in.jsonl", tmp_path / "o", "--text-field", "body")
    assert finish(p)["rows"] == 1


def test_the_input_is_cut_into_blocks_by_its_rows(tmp_path) -> None:
    """Blocks of about BATCHES_PER_BLOCK batches, BLOCKS_PER_ACTOR per actor at least, rows
    counted from Parquet's footers and estimated for JSONL; Ray's choice for a URI."""
    rows = [{"id": i, "text": "好" * (5 + i % 40)} for i in range(20_000)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet", row_group_size=1000)
    for name in ("in.jsonl", "in.parquet"):
        job = BulkJob("b", str(tmp_path / name), "o", batch_size=100, actors=2)
        layout = Layout.of(job)
        want = 20_000 / (BATCHES_PER_BLOCK * 100)
        assert layout.blocks is not None and abs(layout.blocks - want) <= 0.1 * want, name
        small = Layout.of(BulkJob("b", str(tmp_path / name), "o", batch_size=100_000, actors=3))
        assert small.blocks == BLOCKS_PER_ACTOR * 3
    jsonl = Layout.of(BulkJob("b", str(tmp_path / "in.jsonl"), "o", batch_size=100))
    size = (tmp_path / "in.jsonl").stat().st_size
    per_block = size * BATCHES_PER_BLOCK * 100 / 20_000
    assert jsonl.block_bytes is not None and abs(jsonl.block_bytes - per_block) <= 0.1 * per_block
    assert Layout.of(BulkJob("b", "s3://bucket/in.jsonl", "o")) == Layout(None, None)
