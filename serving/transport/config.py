"""Server configuration: one frozen dataclass built once from flags, each with an env variable.

ServerConfig embeds the runtime's own RuntimeConfig (``.runtime``, which embeds Limits): one
flag table for all three, each flag named as its field, and each dataclass passed whole. The one
repeatable flag, --model, gives ``models`` (its variable MODEL holds the list, comma-separated)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, cast

from zh_rnn_encoder.core.enums import Device
from zh_rnn_encoder.runtime.limits import Limits
from zh_rnn_encoder.runtime.models import ModelSpec, check_name
from zh_rnn_encoder.runtime.types import RuntimeConfig


@dataclass(frozen=True)
class ServerConfig:
    bundle: Path | None = None  # the one model's bundle, named model_name; or models instead
    models: tuple[ModelSpec, ...] = ()  # --model NAME=PATH, repeated: several, the first default
    listen: str = "127.0.0.1:50051"
    # device, threads, limits, batching, the in-flight budget, jieba's cache, the bundle's pin
    runtime: RuntimeConfig = RuntimeConfig()
    max_streams_per_connection: int = 0  # HTTP/2 concurrent calls a connection may open; 0: any
    grace_period_s: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"  # text, or json: one object a line (docs/observability.md)
    otlp_endpoint: str = ""  # OTLP/gRPC receiver of trace spans, http(s)://host:port; empty: off
    otlp_service_name: str = "zh-rnn-encoder"  # service.name of the spans
    metrics_listen: str = ""  # host:port of the Prometheus /metrics endpoint; empty: off
    metrics_dir: Path | None = None  # record for a supervisor's endpoint (prometheus multiproc)
    port_file: Path | None = None  # written with the bound port once listening
    ready_file: Path | None = None  # written once SERVING (the self-test passed)
    tls_cert: Path | None = None  # PEM chain; with tls_key, the port speaks TLS only
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # clients must present a certificate it signed (mTLS)
    auth_tokens_file: Path | None = None  # one bearer token a line
    auth_tokens: str = ""  # comma-separated bearer tokens (prefer the file or the env variable)
    reflection: bool = True
    workers: int = 1  # server processes on the port; 0: one per CPU this process may use
    reuse_port: bool = False  # SO_REUSEPORT: share the port with the other workers
    max_document_tokens: int = 0  # EncodeDocument: tokens per document; 0: no cap
    document_deadline_s: float = 3600.0  # EncodeDocument: seconds per document; 0: none
    model_name: str = "encoder"  # the model's name in the Open Inference and OpenAI protocols
    http_listen: str = ""  # host:port of the OpenAI-compatible HTTP API; empty: off
    http_port_file: Path | None = None  # written with the HTTP port once listening
    # The HTTP port's bounds (openai/http_protocol.py); each refusal closes the connection.
    http_max_connections: int = 1000  # open at once; beyond: reset at accept (and fd_reserve)
    http_max_request_line_bytes: int = 8192  # request target; beyond: 414
    http_max_header_bytes: int = 32768  # request line and headers; beyond: 431
    http_max_headers: int = 100  # header fields; beyond: 431
    http_header_timeout_s: float = 10.0  # from connect or a request's first byte; then 408
    http_body_timeout_s: float = 30.0  # for the whole body, once the headers are in; then 408
    http_keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after it
    fd_reserve: int = 256  # file handles no HTTP connection may take (gRPC, metrics, files)
    metrics_tls: bool = True  # the metrics port speaks TLS with --tls-* whenever they are set

    @property
    def served_models(self) -> tuple[ModelSpec, ...]:
        """Every model to serve, the default first: --model's, or --bundle as --model-name,
        pinned by --expect-bundle-sha256."""
        if self.models:
            return self.models
        bundle = cast(Path, self.bundle)  # set when models is not (validate)
        return (ModelSpec(self.model_name, bundle, self.runtime.expect_bundle_sha256),)


# flag -> (type, help); the env variable is the flag's name in upper case with underscores. Each
# flag is a field of ServerConfig, RuntimeConfig or Limits.
_FLAGS: dict[str, tuple[type, str]] = {
    "bundle": (Path, "model bundle directory: the one model, named --model-name (or --model)"),
    "model": (
        str,
        "NAME=PATH: serve the bundle at PATH as model NAME, instead of --bundle; repeat for "
        "several models, the first the default (MODEL: NAME=PATH,NAME=PATH). Pin one with "
        "NAME=PATH@sha256:HEX",
    ),
    "listen": (str, "address to bind, host:port (port 0 picks a free one)"),
    "device": (str, "cpu or cuda: the onnxruntime execution provider, no silent fallback"),
    "threads": (int, "onnxruntime intra-op threads; 0 = the CPUs this process may use"),
    "max_texts_per_request": (int, "texts in one request"),
    "max_chars_per_text": (int, "characters in one text"),
    "max_tokens_per_text": (int, "tokens in one text (truncation on request)"),
    "max_message_bytes": (int, "largest request or response message"),
    "max_queued_texts": (
        int,
        "texts waiting for a model before RESOURCE_EXHAUSTED (each model's queue, and every "
        "model's together at the header gate)",
    ),
    "max_batch_tokens": (int, "padded tokens per onnxruntime run"),
    "max_streams_per_connection": (
        int,
        "calls one connection may have open at once (HTTP/2; 0: no cap); excess calls fail "
        "UNAVAILABLE",
    ),
    "max_inflight_mb": (
        float,
        "memory for admitted work, all requests and streams of every model together; beyond it, "
        "RESOURCE_EXHAUSTED at once (streams wait)",
    ),
    "batch_wait_ms": (float, "extra wait to fill a batch (0: no added latency)"),
    "grace_period_s": (float, "on SIGTERM/SIGINT, time to finish accepted requests"),
    "jieba_cache_dir": (Path, "writable directory for jieba's dictionary cache"),
    "log_level": (str, "DEBUG, INFO, WARNING or ERROR"),
    "log_format": (
        str,
        "text, or json: every line of the process one JSON object (time, level, logger, message "
        "and the call's method, request id, model and status)",
    ),
    "otlp_endpoint": (
        str,
        "send OpenTelemetry trace spans to this OTLP/gRPC receiver, e.g. http://127.0.0.1:4317 "
        "(https: TLS); needs the otel extra; empty: no tracing",
    ),
    "otlp_service_name": (str, "the spans' service.name"),
    "metrics_listen": (str, "host:port for Prometheus /metrics (empty: no endpoint)"),
    "metrics_dir": (Path, "record metrics here for a supervisor to serve (what --workers sets)"),
    "expect_bundle_sha256": (
        str,
        "refuse a bundle whose bundle.json has another sha256 (encoder-export prints it); with "
        "--model, pin each as NAME=PATH@sha256:HEX",
    ),
    "tls_cert": (Path, "TLS certificate chain (PEM); with --tls-key the port is TLS only"),
    "tls_key": (Path, "TLS private key (PEM)"),
    "tls_client_ca": (Path, "CA (PEM) that signs client certificates: mutual TLS, required"),
    "auth_tokens_file": (Path, "file of bearer tokens, one a line: every RPC but health needs one"),
    "auth_tokens": (str, "bearer tokens, comma-separated (prefer AUTH_TOKENS or the file to argv)"),
    "reflection": (str, "gRPC server reflection: on or off"),
    "workers": (int, "server processes sharing the port (SO_REUSEPORT); 0 = one per usable CPU"),
    "reuse_port": (str, "on: share the port with other processes (what --workers sets for each)"),
    "max_document_tokens": (int, "EncodeDocument: tokens one document may hold (0: no cap)"),
    "document_deadline_s": (
        float,
        "EncodeDocument: seconds one document may take, then DEADLINE_EXCEEDED (0: none)",
    ),
    "model_name": (
        str,
        "the name of --bundle's model, which requests name it by on every protocol (with "
        "--model, NAME=PATH names each)",
    ),
    "http_listen": (
        str,
        "host:port for the OpenAI-compatible HTTP API (/v1/embeddings), same auth, TLS and "
        "limits as gRPC; empty: no HTTP port",
    ),
    "http_port_file": (Path, "write the bound HTTP port here once listening"),
    "http_max_connections": (
        int,
        "HTTP connections open at once; beyond it new ones are reset at accept, unlogged. The "
        "open-files limit lowers it: the soft limit (raised to the hard one at start), less the "
        "files open at start and --fd-reserve",
    ),
    "http_max_request_line_bytes": (int, "HTTP request target (URL) size; beyond it 414, closed"),
    "http_max_header_bytes": (
        int,
        "HTTP request line and headers together; beyond it 431 and the connection closed",
    ),
    "http_max_headers": (int, "HTTP header fields in one request; beyond it 431, closed"),
    "http_header_timeout_s": (
        float,
        "seconds for a request's line and headers, from connect or its first byte; then 408, "
        "closed (a connection that sent nothing: closed)",
    ),
    "http_body_timeout_s": (
        float,
        "seconds for a request's whole body once its headers are in; then 408, closed",
    ),
    "http_keep_alive_s": (float, "seconds an idle HTTP keep-alive connection stays open"),
    "fd_reserve": (
        int,
        "file handles the HTTP port's connections never take: room for gRPC connections, the "
        "metrics port and files (docs/reliability.md sizes it)",
    ),
    "metrics_tls": (
        str,
        "on: the metrics port speaks TLS (mutual TLS with --tls-client-ca) with --tls-cert and "
        "--tls-key whenever they are set; off: plaintext even then",
    ),
    "ready_file": (Path, "write this file once SERVING (for supervisors, as --workers uses it)"),
    "port_file": (
        Path,
        "write the bound port here once listening (for supervisors and --listen :0)",
    ),
}


_REPEATED = frozenset({"model"})  # flags given once per value; their variable: comma-separated


def env_name(flag: str) -> str:
    return flag.upper()


class _Repeated(argparse.Action):
    """A flag given several times, whose values add up; the first one given replaces the default
    (its environment variable's list): a flag on the command line wins, as for every flag."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        given = getattr(namespace, self.dest)
        setattr(namespace, self.dest, [*([] if given is self.default else given), values])


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    defaults = {f.name: f.default for c in (ServerConfig, RuntimeConfig, Limits) for f in fields(c)}
    defaults = {k: None if v is MISSING else v for k, v in defaults.items()}
    defaults["model"] = None
    ap = argparse.ArgumentParser(
        prog="encoder-serve",
        description="Serve model bundles over gRPC (encoder.v1, Open Inference) and HTTP.",
        epilog="Every flag can also be set by the environment variable of the same name in upper "
        "case, e.g. MAX_TOKENS_PER_TEXT=256; a flag given on the command line wins.",
    )
    for name, (typ, help_) in _FLAGS.items():
        default = env.get(env_name(name)) or defaults[name]  # an empty variable counts as unset
        shown = "none" if defaults[name] in (None, "") else defaults[name]
        action: type[argparse.Action] | str = "store"
        if name in _REPEATED:
            action = _Repeated
            listed = env.get(env_name(name)) or ""
            default = [x for x in listed.split(",") if x.strip()] or None
        ap.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            action=action,
            type=_optional_path if typ is Path else typ,
            default=default,
            help=f"{help_} [env {env_name(name)}; default {shown}]",
        )
    return ap


def from_args(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> ServerConfig:
    env = os.environ if env is None else env
    ap = parser(env)
    a = vars(ap.parse_args(argv))
    try:
        models = _models(a.pop("model") or [], a)
        limits = Limits(**{k: int(a.pop(k)) for k in _names(Limits) if k in a})
        runtime = {k: _typed(k, a.pop(k)) for k in _names(RuntimeConfig) if k in a}
        cfg = ServerConfig(
            models=models,
            runtime=RuntimeConfig(limits=limits, **runtime),
            **{k: _typed(k, v) for k, v in a.items()},
        )
    except (TypeError, ValueError) as e:
        ap.error(str(e))
    validate(cfg, ap)
    return cfg


def _models(given: list[str], a: dict[str, Any]) -> tuple[ModelSpec, ...]:
    """--model's specs; ValueError for a bad one, a name twice, or flags of the one-model form
    beside them. Without --model, --bundle is required."""
    if not given:
        if a["bundle"] in (None, ""):
            raise ValueError("--bundle PATH or --model NAME=PATH (or BUNDLE, MODEL) is required")
        return ()
    specs = tuple(ModelSpec.parse(x.strip()) for x in given)
    names = [s.name for s in specs]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"--model: each name once; {', '.join(map(repr, twice))} given twice")
    if a["bundle"] not in (None, ""):
        raise ValueError(
            "--model and --bundle are two forms of one setting: give --model NAME=PATH for "
            "every model, or --bundle alone (with --model-name)"
        )
    if a["model_name"] != ServerConfig.model_name:
        raise ValueError("--model-name names the one --bundle; with --model, NAME=PATH names each")
    if a["expect_bundle_sha256"]:
        raise ValueError("with --model, pin each bundle as NAME=PATH@sha256:HEX")
    return specs


def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def _typed(name: str, value: object) -> Any:
    """``value`` as the type the flag table gives field ``name``: checked here, at run time, so
    Any to the dataclasses it is passed to by name."""
    if name == "device":
        return Device.parse(value, "--device")
    if name in ("reflection", "reuse_port", "metrics_tls"):
        return _on_off(value, "--" + name.replace("_", "-"))
    typ = _FLAGS[name][0]
    if value is None or (typ is Path and value == ""):
        return None  # an empty path is no path
    return typ(value)


def _optional_path(value: str) -> Path | None:
    return Path(value) if value else None  # an empty value is no path (Path("") would be ".")


def _on_off(value: object, flag: str) -> bool:
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("on", "true", "1", "yes"):
        return True
    if v in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"{flag} must be on or off, got {value!r}")


def validate(cfg: ServerConfig, ap: argparse.ArgumentParser) -> None:
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        ap.error("--tls-cert and --tls-key go together")
    if cfg.tls_client_ca and not cfg.tls_cert:
        ap.error("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
    rt = cfg.runtime
    for f in fields(Limits):
        if getattr(rt.limits, f.name) < 1:
            ap.error(f"--{f.name.replace('_', '-')} must be at least 1")
    if cfg.workers < 0:
        ap.error("--workers must not be negative")
    if cfg.max_streams_per_connection < 0:
        ap.error("--max-streams-per-connection must not be negative")
    if cfg.max_document_tokens < 0 or cfg.document_deadline_s < 0:
        ap.error("--max-document-tokens and --document-deadline-s must not be negative")
    _validate_http(cfg, ap)
    if rt.max_inflight_mb <= 0:
        ap.error("--max-inflight-mb must be positive")
    if rt.threads < 0 or rt.max_batch_tokens < 1 or rt.batch_wait_ms < 0:
        ap.error("--threads, --max-batch-tokens and --batch-wait-ms must not be negative")
    if cfg.http_listen and not cfg.http_listen.rpartition(":")[0].strip("[]"):
        ap.error(
            f"--http-listen {cfg.http_listen!r} needs an explicit host, e.g. 127.0.0.1:8080, "
            "or 0.0.0.0:8080 for every interface"
        )
    if cfg.metrics_listen and not cfg.metrics_listen.rpartition(":")[0].strip("[]"):
        ap.error(
            f"--metrics-listen {cfg.metrics_listen!r} needs an explicit host, e.g. "
            "127.0.0.1:9100, or 0.0.0.0:9100 for every interface"
        )
    try:
        check_name(cfg.model_name, "--model-name")
    except ValueError as e:
        ap.error(str(e))
    if cfg.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        ap.error(f"--log-level must be DEBUG, INFO, WARNING or ERROR, got {cfg.log_level!r}")
    if cfg.log_format not in ("text", "json"):
        ap.error(f"--log-format must be text or json, got {cfg.log_format!r}")
    scheme, _, host = cfg.otlp_endpoint.partition("://")
    if cfg.otlp_endpoint and (scheme not in ("http", "https") or not host.strip("/")):
        ap.error(
            f"--otlp-endpoint must be http://host:port (plaintext) or https://host:port, "
            f"got {cfg.otlp_endpoint!r}"
        )


def _validate_http(cfg: ServerConfig, ap: argparse.ArgumentParser) -> None:
    for name in ("http_max_connections", "http_max_request_line_bytes", "http_max_headers"):
        if getattr(cfg, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if not cfg.http_max_request_line_bytes <= cfg.http_max_header_bytes:
        ap.error("--http-max-header-bytes (the whole head) must be at least the request line's")
    for name in ("http_header_timeout_s", "http_body_timeout_s", "http_keep_alive_s"):
        if getattr(cfg, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    if cfg.fd_reserve < 0:
        ap.error("--fd-reserve must not be negative")
