"""Verify an exported graph against eager PyTorch: structure, parity, random shapes, invariance.

Every check runs; every mismatch is collected and raised together in one VerificationError.
"""

from __future__ import annotations

import copy
import functools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.enums import Formulation
from zh_rnn_encoder.core.manifest import ModelConfig
from zh_rnn_encoder.export.model import TorchEncoder
from zh_rnn_encoder.export.onnx_export import expected_recurrent_ops
from zh_rnn_encoder.runtime.session import Session

GRID_BATCHES = (1, 3, 17, 64)
GRID_SEQS = (1, 2, 7, 33, 128, 512)
# Grids by verification level: the full one is the quality bar; quick is for tests and drafts.
GRIDS = {
    "full": {"batches": GRID_BATCHES, "seqs": GRID_SEQS, "n_random": 8},
    "quick": {"batches": (1, 17), "seqs": (1, 7, 130), "n_random": 2},
}
RECURRENT_OPS = ("RNN", "LSTM", "GRU", "Scan", "Loop")
# Over PARITY_ATOL, a case is judged against eager PyTorch in float64: onnxruntime passes if it is
# within NOISE_FACTOR of float32 PyTorch's own error there (and under NOISE_CAP). A trained
# recurrence amplifies rounding along the sequence: the default GRU on random ids at seq 512
# is 1.5e-4 from float32 eager, which is itself 8e-6 from float64, with onnxruntime 3e-5 from it
# (4x): float32 noise, not a wrong graph. A wrong graph misses float64 by orders of magnitude.
NOISE_FACTOR, NOISE_CAP = 10.0, 1e-3


@dataclass(frozen=True)
class Mismatch:
    check: str  # "structure", "shape", "parity", "invariance"
    where: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.detail}"


class VerificationError(Exception):
    def __init__(self, mismatches: list[Mismatch]) -> None:
        self.mismatches = mismatches
        body = "\n".join(f"  - {m}" for m in mismatches)
        super().__init__(f"export verification failed with {len(mismatches)} mismatch(es):\n{body}")


@dataclass
class Report:
    max_abs_err: float = 0.0
    max_invariance_err: float = 0.0
    cases: int = 0
    noise_cases: int = 0  # over PARITY_ATOL against float32, passed against float64
    max_float64_err: float = 0.0  # onnxruntime vs float64 eager, in those cases
    mismatches: list[Mismatch] = field(default_factory=list)


_DATA_INPUTS = (contract.IDS, contract.LENGTHS)


def check_structure(
    graph: onnx.ModelProto, model: TorchEncoder, formulation: Formulation | None = None
) -> list[Mismatch]:
    """Named, typed I/O with symbolic batch/seq axes, and exactly the loop ops of
    ``formulation`` (None: the cell's default)."""
    out = []
    want = (*contract.input_specs(model.config), *contract.output_specs(model.config))
    got = [*graph.graph.input, *graph.graph.output]
    for spec, vi in zip(want, got):
        dims = tuple(d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim)
        if vi.name != spec.name or dims != spec.shape:
            out.append(Mismatch("structure", vi.name, f"declared {dims}, contract {spec.shape}"))
    if len(got) != len(want):
        out.append(Mismatch("structure", "graph", f"{len(got)} inputs+outputs, want {len(want)}"))
    ops = Counter(n.op_type for n in graph.graph.node)
    want_ops = expected_recurrent_ops(model.config, formulation)
    got_ops = {op: ops.get(op, 0) for op in (*RECURRENT_OPS, *want_ops)}
    if any(got_ops[op] != want_ops.get(op, 0) for op in got_ops):
        out.append(
            Mismatch(
                "structure",
                "graph",
                f"loop ops {got_ops}, want {want_ops} for {model.config.num_layers} layer(s): "
                "unrolled or frozen over seq?",
            )
        )
    return out


def random_batch(
    rng: np.random.Generator, vocab_size: int, batch: int, seq: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random ids and mixed lengths in 1..seq, the longest exactly seq."""
    ids = rng.integers(0, vocab_size, size=(batch, seq), dtype=np.int64)
    lengths = rng.integers(1, seq + 1, size=batch, dtype=np.int64)
    lengths[rng.integers(batch)] = seq
    return ids, lengths


def random_state(
    rng: np.random.Generator, config: ModelConfig, batch: int
) -> dict[str, np.ndarray]:
    """A random initial state per row, for every state input of the contract.

    Drawn from where a state the model returned can lie: a hidden state is a tanh, in (-1, 1),
    so it is uniform there; an LSTM's cell memory is unbounded, so it is standard normal. Hidden
    states drawn from the normal (up to ±4, which no model returns) put a trained GRU 1.2-3.2e-5
    off eager PyTorch after 512 steps: an error on inputs it can never receive."""
    n = config.num_layers * config.directions
    names = [spec.name for spec in contract.input_specs(config)[len(_DATA_INPUTS) :]]
    shape = (n, batch, config.hidden_size)
    return {
        k: (
            rng.standard_normal(shape) if k == contract.INITIAL_C else rng.uniform(-1, 1, shape)
        ).astype(np.float32)
        for k in names
    }


def _eager(
    model: TorchEncoder,
    ids: np.ndarray,
    lengths: np.ndarray,
    initial: dict[str, np.ndarray],
    dtype: torch.dtype = torch.float32,
) -> dict[str, np.ndarray]:
    t = {k: torch.from_numpy(v).to(dtype) for k, v in initial.items()}
    with torch.no_grad():
        s, f, h, c = model.forward_state(
            torch.from_numpy(ids),
            torch.from_numpy(lengths),
            t.get(contract.INITIAL_H),
            t.get(contract.INITIAL_C),
        )
    out = {contract.STATES: s, contract.FINAL: f, contract.FINAL_H: h, contract.FINAL_C: c}
    return {k: v.numpy() for k, v in out.items() if v is not None}


def _compare(
    report: Report,
    where: str,
    got: dict,
    want: dict,
    atol: float,
    exact: Callable[[], dict] | None = None,
) -> None:
    """``got`` against float32 eager ``want``; over ``atol``, against float64 eager ``exact()``."""
    for name, w in want.items():
        g = got.get(name)
        if g is None or g.shape != w.shape:
            shape = None if g is None else g.shape
            report.mismatches.append(
                Mismatch("shape", f"{where} {name}", f"onnx {shape} vs eager {w.shape}")
            )
            continue
        err = float(np.abs(g - w).max()) if g.size else 0.0
        report.max_abs_err = max(report.max_abs_err, err)
        if err <= atol:
            continue
        if exact is not None:
            x = exact()[name]
            ours, theirs = float(np.abs(g - x).max()), float(np.abs(w - x).max())
            if ours <= min(NOISE_CAP, max(atol, NOISE_FACTOR * theirs)):
                report.noise_cases += 1
                report.max_float64_err = max(report.max_float64_err, ours)
                continue
            detail = (
                f"max abs err {err:.3g} > {atol:g}; against float64 eager {ours:.3g}, "
                f"float32 eager's own {theirs:.3g}"
            )
        else:
            detail = f"max abs err {err:.3g} > {atol:g}"
        report.mismatches.append(Mismatch("parity", f"{where} {name}", detail))


def _row(out: dict[str, np.ndarray], i: int, n: int) -> dict[str, np.ndarray]:
    """Row ``i`` of every output: its first ``n`` token states, its vector, its states."""
    return {
        k: v[i, :n] if k == contract.STATES else v[i] if k == contract.FINAL else v[:, i]
        for k, v in out.items()
    }


def _invariance(
    report: Report,
    run: Callable,
    where: str,
    ids: np.ndarray,
    lengths: np.ndarray,
    initial: dict[str, np.ndarray],
    batched: dict[str, np.ndarray],
) -> None:
    """Each row alone (unpadded, from its own initial state) must equal its row in the padded
    batch of mixed states, both directions, every output."""
    for i in range(len(lengths)):
        n = int(lengths[i])
        alone = run(
            ids[i : i + 1, :n], lengths[i : i + 1], {k: v[:, i : i + 1] for k, v in initial.items()}
        )
        a, b = _row(alone, 0, n), _row(batched, i, n)
        err = max(float(np.abs(a[k] - b[k]).max()) for k in a)
        report.max_invariance_err = max(report.max_invariance_err, err)
        if not err <= contract.BATCH_INVARIANCE_ATOL:
            report.mismatches.append(
                Mismatch("invariance", f"{where} row {i} (len {n})", f"alone vs batched {err:.3g}")
            )


def shape_cases(
    rng: np.random.Generator,
    batches: Iterable[int],
    seqs: Iterable[int],
    n_random: int,
    max_batch: int = 64,
    max_seq: int = 512,
) -> list[tuple[int, int]]:
    grid = [(b, s) for b in batches for s in seqs]
    rand = [
        (int(rng.integers(1, max_batch + 1)), int(rng.integers(1, max_seq + 1)))
        for _ in range(n_random)
    ]
    return grid + rand


def verify(
    graph: onnx.ModelProto,
    model: TorchEncoder,
    *,
    batches: Iterable[int] = GRID_BATCHES,
    seqs: Iterable[int] = GRID_SEQS,
    n_random: int = 8,
    seed: int = 0,
    atol: float = contract.PARITY_ATOL,
    invariance_every: int = 4,
    progress: Callable[[str], None] | None = None,
    formulation: Formulation | None = None,
) -> Report:
    """Runs every check; raises VerificationError listing all mismatches, else returns a Report.
    ``formulation``: the one the graph was written in (None: the cell's default)."""
    report = Report(mismatches=check_structure(graph, model, formulation))
    model64 = copy.deepcopy(model).double()
    run = Session(graph.SerializeToString(), threads=1).run_state

    rng = np.random.default_rng(seed)
    cases = shape_cases(rng, batches, seqs, n_random)
    for k, (b, s) in enumerate(cases):
        where = f"batch={b} seq={s}"
        ids, lengths = random_batch(rng, model.config.vocab_size, b, s)
        # every other case from a random initial state per row (zeros, the default, otherwise)
        initial = random_state(rng, model.config, b) if k % 2 else {}
        if initial:
            where += " random initial state"
        try:
            got = run(ids, lengths, initial)
        except Exception as e:  # a frozen axis makes onnxruntime refuse other shapes
            report.mismatches.append(Mismatch("shape", where, f"onnxruntime failed: {e}"))
            continue
        exact = functools.cache(
            functools.partial(_eager, model64, ids, lengths, initial, torch.float64)
        )
        _compare(report, where, got, _eager(model, ids, lengths, initial), atol, exact)
        if b > 1 and k % invariance_every == 0:
            _invariance(report, run, where, ids, lengths, initial, got)
        report.cases += 1
        if progress:
            progress(f"verify {k + 1}/{len(cases)} {where} max_err={report.max_abs_err:.2e}")
    if progress and report.noise_cases:
        progress(
            f"{report.noise_cases} output(s) over {atol:g} from float32 eager passed against "
            f"float64 eager: onnxruntime within {report.max_float64_err:.2e} of it, at most "
            f"{NOISE_FACTOR:g}x float32 PyTorch's own error"
        )
    if report.mismatches:
        raise VerificationError(report.mismatches)
    return report
