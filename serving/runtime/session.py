"""The onnxruntime session: provider choice, graph checks against the bundle, numpy in and out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import Bundle
from zh_rnn_encoder.core.contract import TensorSpec
from zh_rnn_encoder.core.enums import Device
from zh_rnn_encoder.core.errors import BundleError, ProviderUnavailable
from zh_rnn_encoder.core.manifest import sha256_file

_ORT_TYPES = {"tensor(int64)": "int64", "tensor(float)": "float32"}


def provider_for(device: Device | str) -> str:
    """The execution provider for ``device``; an error listing what is available if it is absent."""
    try:
        device = Device(device)
    except ValueError:
        raise ProviderUnavailable(
            f"unknown device {device!r}; choose one of {[d.value for d in Device]}"
        ) from None
    available = ort.get_available_providers()
    if device.provider not in available:
        hint = " (install onnxruntime-gpu instead of onnxruntime)" if device is Device.CUDA else ""
        raise ProviderUnavailable(
            f"--device {device} needs {device.provider}, which this onnxruntime "
            f"{ort.__version__} lacks{hint}; available providers: {', '.join(available)}"
        )
    return device.provider


# Parity with eager fp32 (1e-4) and batch invariance (1e-6) need fp32 matrix products: onnxruntime's
# CUDA provider otherwise uses TF32 on Ampere and later, measured 2-4e-4 off eager on an H100.
PROVIDER_OPTIONS: dict[Device, dict[str, str]] = {Device.CPU: {}, Device.CUDA: {"use_tf32": "0"}}


class Session:
    """Runs a graph of the contract: ids int64 [B, S], lengths int64 [B] -> states, final."""

    def __init__(self, graph: Path | bytes, device: Device | str = Device.CPU, threads: int = 1):
        """``graph`` is a model.onnx path or its bytes; ``threads`` intra-op threads (>= 1)."""
        self.provider = provider_for(device)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning workers burn the cores that the event loop and jieba need between runs.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Errors only: at every load onnxruntime warns that the optional initial state (an
        # initializer a caller may override, by design) is not folded as a constant. It costs
        # nothing: the same graph with it as a constant runs no faster, per cell, at 1x20 to
        # 8x512 (bench/state_inputs.py, docs/performance.md), so one graph serves both kinds.
        opts.log_severity_level = 3
        source = graph if isinstance(graph, bytes) else str(graph)
        device = Device(device)
        self.ort = ort.InferenceSession(
            source, sess_options=opts, providers=[(self.provider, PROVIDER_OPTIONS[device])]
        )
        self.threads = threads

        self.state_names = tuple(
            a.name for a in self.ort.get_overridable_initializers()
        )  # the optional initial state inputs (h0, and c0 for LSTM)
        self.output_names = [o.name for o in self.ort.get_outputs()]

    def run(self, ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """states float32 [B, S, F] (zeros past each length) and final float32 [B, F]."""
        states, final = self.ort.run(
            [contract.STATES, contract.FINAL],
            {contract.IDS.name: ids, contract.LENGTHS.name: lengths},
        )
        return states, final

    def run_state(
        self, ids: np.ndarray, lengths: np.ndarray, initial: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """Every output by name (states, final, h_n and for LSTM c_n), starting each row from
        ``initial`` ({h0: [L*D, B or 1, H], c0: ...}; zeros for any left out)."""
        feed = {contract.IDS.name: ids, contract.LENGTHS.name: lengths, **(initial or {})}
        return dict(zip(self.output_names, self.ort.run(self.output_names, feed)))


def open_session(bundle: Bundle, device: Device | str = Device.CPU, threads: int = 1) -> Session:
    """A session on the bundle's graph, checked against bundle.json and the vocabulary file."""
    provider_for(device)  # a missing provider is the operator's error, not the bundle's
    try:
        session = Session(bundle.graph_path, device, threads)
    except Exception as e:  # onnxruntime raises its own untyped errors for bad graphs
        raise BundleError(
            bundle.path, [f"{contract.GRAPH_FILE}: onnxruntime cannot load it: {e}"]
        ) from e
    problems = check_graph(session.ort, bundle)
    if problems:
        raise BundleError(bundle.path, problems)
    return session


def _spec_of(arg: ort.NodeArg) -> TensorSpec:
    return TensorSpec(arg.name, _ORT_TYPES.get(arg.type, arg.type), tuple(arg.shape))


def check_graph(session: ort.InferenceSession, bundle: Bundle) -> list[str]:
    """The graph's declared I/O and metadata must match bundle.json and the vocabulary file."""
    problems = []
    graph = bundle.manifest.graph
    args = (*session.get_inputs(), *session.get_overridable_initializers(), *session.get_outputs())
    got = [_spec_of(a) for a in args]
    want = [*graph.inputs, *graph.outputs]
    if got != want:
        problems.append(
            f"{contract.GRAPH_FILE}: declares {got}, {contract.MANIFEST_FILE} says {want}"
        )
    meta = session.get_modelmeta().custom_metadata_map
    vocab_sha = sha256_file(bundle.path / bundle.manifest.vocab.file)
    if meta.get(contract.META_VOCAB_SHA256) != vocab_sha:
        problems.append(
            f"{contract.VOCAB_FILE}: is not the vocabulary {contract.GRAPH_FILE} "
            f"was exported with (graph records sha256 "
            f"{str(meta.get(contract.META_VOCAB_SHA256))[:12]}…)"
        )
    if meta.get(contract.META_VOCAB_SIZE) != str(len(bundle.vocab)):
        problems.append(
            f"{contract.VOCAB_FILE}: {len(bundle.vocab)} tokens, but "
            f"{contract.GRAPH_FILE} embeds {meta.get(contract.META_VOCAB_SIZE)}"
        )
    if meta.get(contract.META_OUTPUT_DIM) != str(bundle.model.output_dim):
        problems.append(
            f"{contract.GRAPH_FILE}: built for output size {meta.get(contract.META_OUTPUT_DIM)}, "
            f"{contract.MANIFEST_FILE}'s model gives {bundle.model.output_dim}"
        )
    return problems
