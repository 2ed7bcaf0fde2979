"""`make quality`: the quality table (docs/quality.md). Every cell trained with the default
recipe, two ablations (without `bow`, without `--compose`), the same architecture untrained, and
the previous (random, 324-line corpus) default, scored by one encoder-eval run on the default
data, against TF-IDF and word-vector baselines.

    python -m zh_rnn_encoder.export.training.quality --out build/quality -- TRAIN_ARGS...
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

# name -> flags added to the recipe's (the last --cell/--bidirectional given wins)
CELLS = {
    "rnn": ["--cell", "rnn"],
    "gru": ["--cell", "gru"],
    "lstm": ["--cell", "lstm"],
    "bigru": ["--cell", "gru", "--bidirectional"],
    # the bow ablation: the recipe's objective less bow (the teacher stays, so one thing changes;
    # a plain "supervised" would be refused beside the recipe's --teacher)
    "gru-without-bow": ["--cell", "gru", "--objective", "supervised+distill:1"],
    "rnn-words-only": ["--cell", "rnn", "--no-compose"],  # the --compose ablation
}


def sh(*cmd: object) -> None:
    print("+", " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="quality", description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("build/quality"))
    ap.add_argument("--cells", nargs="*", default=list(CELLS), choices=list(CELLS))
    ap.add_argument("train_args", nargs="*", help="the recipe: encoder-train flags")
    a = ap.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    bundles, seconds = {}, {}
    for name in a.cells:
        run = a.out / "runs" / name
        shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(run.with_name(name + ".data"), ignore_errors=True)
        t0 = time.perf_counter()
        sh(
            bin_dir / "encoder-train",
            "--data",
            "default",
            "--out",
            run,
            *a.train_args,
            *CELLS[name],
            "--no-progress",
        )
        seconds[name] = time.perf_counter() - t0
        bundles[name] = a.out / "bundles" / name
        sh(
            bin_dir / "encoder-export",
            "bundle",
            "--checkpoint",
            run / "checkpoint.pt",
            "--out",
            bundles[name],
            "--quick",
        )
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
