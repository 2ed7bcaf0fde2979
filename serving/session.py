"""The onnxruntime session: provider choice, graph checks against the bundle, numpy in and out."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from serving import contract
from serving.bundle import Bundle, sha256_file
from serving.errors import BundleError, ProviderUnavailable

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
_ORT_TYPES = {"tensor(int64)": "int64", "tensor(float)": "float32"}


def provider_for(device: str) -> str:
    """The execution provider for ``device``; an error listing what is available if it is absent."""
    if device not in PROVIDERS:
        raise ProviderUnavailable(f"unknown device {device!r}; choose one of {sorted(PROVIDERS)}")
    available = ort.get_available_providers()
    if PROVIDERS[device] not in available:
        hint = " (install onnxruntime-gpu instead of onnxruntime)" if device == "cuda" else ""
        raise ProviderUnavailable(
            f"--device {device} needs {PROVIDERS[device]}, which this onnxruntime "
            f"{ort.__version__} lacks{hint}; available providers: {', '.join(available)}"
        )
    return PROVIDERS[device]


class EncoderSession:
    """Runs the bundle's graph: ids int64 [B, S], lengths int64 [B] -> states, final (float32)."""

    def __init__(self, bundle: Bundle, device: str = "cpu", threads: int = 1) -> None:
        self.provider = provider_for(device)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning workers burn the cores that the event loop and jieba need between runs.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(bundle.graph_path), sess_options=opts, providers=[self.provider]
            )
        except Exception as e:  # onnxruntime raises its own untyped errors for bad graphs
            raise BundleError(
                bundle.path, [f"{contract.GRAPH_FILE}: onnxruntime cannot load it: {e}"]
            ) from e
        self.threads = threads
        self.output_dim = bundle.model.output_dim
        problems = check_graph(self._session, bundle)
        if problems:
            raise BundleError(bundle.path, problems)

    def run(self, ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """states float32 [B, S, F] (zeros past each length) and final float32 [B, F]."""
        states, final = self._session.run(
            [contract.STATES, contract.FINAL],
            {contract.IDS.name: ids, contract.LENGTHS.name: lengths},
        )
        return states, final


def _spec_of(arg: ort.NodeArg) -> contract.TensorSpec:
    return contract.TensorSpec(arg.name, _ORT_TYPES.get(arg.type, arg.type), tuple(arg.shape))


def check_graph(session: ort.InferenceSession, bundle: Bundle) -> list[str]:
    """The graph's declared I/O and metadata must match bundle.json and the vocabulary file."""
    problems = []
    got = [_spec_of(a) for a in (*session.get_inputs(), *session.get_outputs())]
    want = [*bundle.inputs, *bundle.outputs]
    if got != want:
        problems.append(
            f"{contract.GRAPH_FILE}: declares {[s.to_json() for s in got]}, "
            f"bundle.json says {[s.to_json() for s in want]}"
        )
    meta = session.get_modelmeta().custom_metadata_map
    vocab_sha = sha256_file(bundle.path / contract.VOCAB_FILE)
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
    return problems
