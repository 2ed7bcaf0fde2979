"""`make bench` keeps working: a very short quick run, every baseline and target reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.serving_cost import GOALS
from tests.support import ROOT


def test_quick_bench_runs_end_to_end(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "bench.run", "--quick", "--seconds", "0.3", "--out", str(tmp_path)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=300)
    res = json.loads((tmp_path / "bench-quick.json").read_text())
    servers = {"ours", "eager", "empty", "protocols", "aiohttp"}
    assert {r["server"] for r in res["server_runs"]} == servers
    assert all(r["errors"] == 0 and r["requests"] > 0 for r in res["server_runs"])
    assert {(g["cell"], g["shape"]) for g in res["graph"]} == {
        (c, s) for c in ("rnn", "lstm", "gru") for s in ("1x20", "32x50")
    }
    assert all(t["value"] is not None for t in res["targets"])
    assert set(res["baselines"]) == {"tokenizer", "pipeline_1", "pipeline_32"}
    assert [p["texts_per_call"] for p in res["encode_parts"]] == [1, 32]
    assert all(0 < p["ratio"] < 2 for p in res["encode_parts"])
    assert [d["chars"] for d in res["document"]] == [1_000, 10_000]
    assert all(d["tokens"] > 0 and d["rss_peak_mb"] > 0 for d in res["document"])
    assert (tmp_path / "bench-quick.png").stat().st_size > 10_000
    report = (tmp_path / "bench-quick.md").read_text()
    assert "| target |" in report and "Serving path at the cost of its work" in report
    cost = res["serving_cost"]  # issue 19's table, server CPU from /proc
    assert set(cost["ratios"]) == set(GOALS)
    refusal = cost["ratios"].pop("refusal_over_served_cpu")  # 0 when /proc's ticks saw none
    assert refusal >= 0 and all(v > 0 for v in cost["ratios"].values()), cost["ratios"]
    assert all(r["requests"] > 0 for r in cost["loads"])
    assert all(r["errors"] == 0 for r in cost["loads"][:4])  # only the storm is refused
