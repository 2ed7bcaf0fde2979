"""`make quality`: the quality table (docs/quality.md). Every cell trained with the default
recipe, two ablations (without `bow`, without `--compose`), the same architecture untrained, and
the previous (random, 324-line corpus) default, scored by one encoder-eval run on the default
data, against TF-IDF and word-vector baselines.

    python -m zh_rnn_encoder.export.training.quality --out build/quality -- TRAIN_ARGS...
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# name -> flags added to the recipe's (the last --cell/--bidirectional given wins)
# The recipe's --nonlinearity relu is the rnn cell's own; other cells take "tanh", the neutral
# value ModelConfig asks of them (their gates have no choice to make).
_GATED = ["--nonlinearity", "tanh"]
CELLS = {
    "rnn": ["--cell", "rnn"],
    "gru": ["--cell", "gru", *_GATED],
    "lstm": ["--cell", "lstm", *_GATED],
    "bigru": ["--cell", "gru", "--bidirectional", *_GATED],
    # the GRU at half the width: a quarter of the recurrence, twice the default's graph time
    "gru-128": ["--cell", "gru", "--hidden-size", "128", *_GATED],
    # the bow ablation: the recipe's objective less bow (the teacher stays, so one thing changes;
    # a plain "supervised" would be refused beside the recipe's --teacher)
    "gru-without-bow": ["--cell", "gru", "--objective", "supervised+distill:1", *_GATED],
    "rnn-words-only": ["--cell", "rnn", "--no-compose"],  # the --compose ablation
    "rnn-tanh": ["--cell", "rnn", "--nonlinearity", "tanh"],  # the tutorial's, the earlier default
}


def sh(*cmd: object, log: Path | None = None) -> None:
    """Runs ``cmd``; with ``log``, its output goes there (cells train side by side)."""
    print("+", " ".join(map(str, cmd)), f"> {log}" if log else "", file=sys.stderr, flush=True)
    if log is None:
        subprocess.run([str(c) for c in cmd], check=True)
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as f:
        r = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        tail = "".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[-5:])
        raise SystemExit(f"{cmd[0]} failed ({r.returncode}); the end of {log}:\n{tail}")


def train_one(bin_dir: Path, out: Path, name: str, train_args: list[str]) -> tuple[Path, float]:
    """One cell trained with the recipe and exported (quick parity); its bundle and seconds."""
    run, log = out / "runs" / name, out / "logs" / f"{name}.log"
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(run.with_name(name + ".data"), ignore_errors=True)
    log.unlink(missing_ok=True)
    t0 = time.perf_counter()
    sh(bin_dir / "encoder-train", "--data", "default", "--out", run, *train_args, *CELLS[name],
       "--no-progress", log=log)  # fmt: skip
    seconds = time.perf_counter() - t0
    bundle = out / "bundles" / name
    sh(bin_dir / "encoder-export", "bundle", "--checkpoint", run / "checkpoint.pt", "--out",
       bundle, "--quick", log=log)  # fmt: skip
    print(f"quality: {name} trained in {seconds:.0f} s", file=sys.stderr, flush=True)
    return bundle, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="quality", description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("build/quality"))
    ap.add_argument("--cells", nargs="*", default=list(CELLS), choices=list(CELLS))
    ap.add_argument(
        "--jobs",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="cells trained at once (default: the CPUs this process may use; the recipe trains "
        "on one thread, so one a core)",
    )
    ap.add_argument("train_args", nargs="*", help="the recipe: encoder-train flags")
    a = ap.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    with ThreadPoolExecutor(max(1, a.jobs)) as pool:  # each a process; the threads only wait
        done = {n: pool.submit(train_one, bin_dir, a.out, n, a.train_args) for n in a.cells}
        bundles = {n: f.result()[0] for n, f in done.items()}
        seconds = {n: f.result()[1] for n, f in done.items()}
    first = bundles[a.cells[0]]
    untrained = a.out / "bundles" / f"{a.cells[0]}-untrained"
    sh(bin_dir / "encoder-export", "random", "--like", first, "--out", untrained, "--quick")
    previous = a.out / "bundles" / "previous-default"
    sh(bin_dir / "encoder-export", "build", "--out", previous, "--quick")
    specs = [f"{n}={p}" for n, p in bundles.items()]
    specs += [f"{a.cells[0]}-untrained={untrained}", f"previous-default={previous}"]
    sh(
        bin_dir / "encoder-eval",
        "--data",
        "default",
        "--out",
        a.out,
        *[x for s in specs for x in ("--bundle", s)],
    )
    for name, s in seconds.items():
        print(f"training time, {name}: {s:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
