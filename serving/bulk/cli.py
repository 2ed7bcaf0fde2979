"""`encoder-bulk`: a JSONL, Parquet or text corpus encoded to Parquet on Ray, local or a cluster."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from zh_rnn_encoder.core.enums import Device, Pooling, Truncation


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="encoder-bulk", description=__doc__)
    ap.add_argument("--bundle", required=True, help="model bundle directory (on every node)")
    ap.add_argument("--input", required=True, help="a .jsonl, .parquet or text file (or dir)")
    ap.add_argument("--output", required=True, help="directory of Parquet parts; rerun to resume")
    ap.add_argument(
        "--format",
        choices=["jsonl", "parquet", "text"],
        default="",
        help="default: from the input's suffix (text: one per line, id = line number)",
    )
    ap.add_argument("--text-field", default="text")
    ap.add_argument("--id-field", default="id")
    ap.add_argument(
        "--pooling", choices=[p.value for p in Pooling], default=None, help="default: the model's"
    )
    ap.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default: the model's",
    )
    ap.add_argument("--truncation", choices=[t.value for t in Truncation], default="none")
    ap.add_argument("--max-tokens", type=int, default=0)
    ap.add_argument("--keep-tokens", action="store_true", help="also write tokens and their ids")
    ap.add_argument(
        "--allow-mixed-versions",
        action="store_true",
        help="add rows to an --output that holds rows of another model version (each row keeps "
        "its model_version column); without it such a run is refused",
    )
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--actors", type=int, default=1, help="encoder actors (one bundle each)")
    ap.add_argument("--cpus-per-actor", type=float, default=1.0, help="= its onnxruntime threads")
    ap.add_argument("--num-gpus", type=float, default=0.0, help="per actor, with --device cuda")
    ap.add_argument("--device", choices=[d.value for d in Device], default="cpu")
    ap.add_argument(
        "--address",
        help="an existing Ray cluster (ray start --head; default: RAY_ADDRESS); else a new local "
        "Ray that binds and connects on 127.0.0.1 only",
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    from zh_rnn_encoder.bulk.job import BulkJob, run

    a = parser().parse_args(argv)
    job = BulkJob(
        bundle=a.bundle, input=a.input, output=a.output, format=a.format,
        text_field=a.text_field, id_field=a.id_field, pooling=a.pooling, normalize=a.normalize,
        truncation=a.truncation, max_tokens=a.max_tokens, keep_tokens=a.keep_tokens,
        batch_size=a.batch_size, actors=a.actors, cpus_per_actor=a.cpus_per_actor,
        gpus_per_actor=a.num_gpus, device=a.device, allow_mixed_versions=a.allow_mixed_versions,
    )  # fmt: skip
    try:
        summary = run(job, a.address)
    except (ValueError, FileNotFoundError) as e:
        print(f"encoder-bulk: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    print(
        f"encoder-bulk: {summary['rows']} rows, {summary['texts_per_s']} texts/s, "
        f"{summary['errors']} errors, {summary['output_mb']} MB in {a.output}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
