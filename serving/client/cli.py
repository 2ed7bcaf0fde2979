"""`encoder-client`: encode, tokenize, info, models and health from a terminal or a script (JSON
out)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import grpc

from zh_rnn_encoder.client import EncoderClient
from zh_rnn_encoder.core.enums import Pooling, Truncation


def _texts(a: argparse.Namespace) -> list[str]:
    if a.texts:
        return a.texts
    return [line.rstrip("\n") for line in sys.stdin if line.strip()]


def _emit(obj: object) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


def cmd_encode(c: EncoderClient, a: argparse.Namespace) -> int:
    texts = _texts(a)
    for start in range(0, len(texts), a.batch):
        chunk = texts[start : start + a.batch]
        for text, e in zip(
            chunk,
            c.encode(
                chunk,
                pooling=a.pooling,
                normalize=a.normalize,
                truncation=a.truncation,
                max_tokens=a.max_tokens,
                token_vectors=a.token_vectors,
                model=a.model,
            ),
        ):
            out = {
                "text": text,
                "tokens": e.tokens,
                "ids": e.ids.tolist(),
                "vector": [round(float(x), a.digits) for x in e.vector],
                "model_version": e.model_version,
            }
            if e.truncated:
                out["truncated"] = True
            if e.token_vectors is not None:
                out["token_vectors"] = [
                    [round(float(x), a.digits) for x in row] for row in e.token_vectors
                ]
            _emit(out)
    return 0


def cmd_tokenize(c: EncoderClient, a: argparse.Namespace) -> int:
    texts = _texts(a)
    for text, t in zip(texts, c.tokenize(texts, model=a.model)):
        _emit({"text": text, "tokens": t.tokens, "ids": t.ids.tolist()})
    return 0


def cmd_info(c: EncoderClient, a: argparse.Namespace) -> int:
    _emit(c.info(a.model))
    return 0


def cmd_models(c: EncoderClient, a: argparse.Namespace) -> int:
    for m in c.list_models():
        _emit(m)
    return 0


def cmd_health(c: EncoderClient, a: argparse.Namespace) -> int:
    status = c.health(a.service)
    _emit({"service": a.service, "status": status})
    return 0 if status == "SERVING" else 1


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="encoder-client", description=__doc__)
    ap.add_argument(
        "--target",
        default=os.environ.get("TARGET", "127.0.0.1:50051"),
        help="server address [env TARGET; default 127.0.0.1:50051]",
    )
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    ap.add_argument("--tls", action="store_true", help="TLS with the system's root certificates")
    ap.add_argument(
        "--tls-ca",
        default=os.environ.get("TLS_CA") or None,
        help="TLS with this CA certificate (PEM) [env TLS_CA]",
    )
    ap.add_argument("--tls-cert", help="client certificate (PEM), for mutual TLS")
    ap.add_argument("--tls-key", help="client private key (PEM), for mutual TLS")
    ap.add_argument(
        "--token",
        default=os.environ.get("TOKEN") or None,
        help="bearer token [env TOKEN; prefer the variable to the command line]",
    )
    ap.add_argument(
        "--model",
        default="",
        help="the model to use (encoder-client models); default: the server's",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("encode", help="texts as arguments, or one per line on stdin; JSON lines")
    p.add_argument("texts", nargs="*")
    p.add_argument(
        "--pooling",
        choices=[m.value for m in Pooling],
        default=None,
        help="default: the model's (encoder-client info: default_pooling)",
    )
    p.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="L2-normalise sentence vectors, or not (default: the model's)",
    )
    p.add_argument(
        "--truncation",
        choices=[*(m.value for m in Truncation), "first", "last"],
        default="none",
        help="keep_first/keep_last (or first/last) the --max-tokens tokens of a long text",
    )
    p.add_argument("--max-tokens", type=int, default=0)
    p.add_argument("--token-vectors", action="store_true", help="also print a vector per token")
    p.add_argument("--batch", type=int, default=32, help="texts per request")
    p.add_argument("--digits", type=int, default=6, help="decimals printed")
    p.set_defaults(func=cmd_encode)
    p = sub.add_parser("tokenize", help="segmentation and ids only")
    p.add_argument("texts", nargs="*")
    p.set_defaults(func=cmd_tokenize)
    sub.add_parser("info", help="model and server information").set_defaults(func=cmd_info)
    sub.add_parser("models", help="the served models: name, version, is_default").set_defaults(
        func=cmd_models
    )
    p = sub.add_parser("health", help="grpc.health.v1 status; exit 0 only when SERVING")
    p.add_argument("--service", default="", help="service name ('' = the whole server)")
    p.set_defaults(func=cmd_health)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    try:
        tls = {"tls": a.tls, "tls_ca": a.tls_ca, "tls_cert": a.tls_cert, "tls_key": a.tls_key}
        with EncoderClient(a.target, timeout=a.timeout, token=a.token, **tls) as c:
            return a.func(c, a)
    except grpc.RpcError as e:
        print(f"encoder-client: {e.code().name}: {e.details()}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
