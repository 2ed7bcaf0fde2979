"""tools/state_bound.py: a relu RNN whose states settle passes; one whose states grow fails; a
bounded cell passes without being probed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from tests.support.samples import SMALL
from tools import state_bound

SIZES = {"repeat": 20, "top": 5, "long": 200, "texts": 2, "text-tokens": 300, "greedy": 50}
ARGS = [x for k, v in SIZES.items() for x in (f"--{k}", str(v))]


def _relu_bundle(tmp_path: Path, bundle_factory, scale: float) -> Path:
    """A small relu RNN with its recurrent matrix scaled: 0.2 settles, 4 grows with every step."""
    from zh_rnn_encoder.export import Checkpoint, export_bundle

    _, ckpt = bundle_factory(nonlinearity="relu", **SMALL)
    model = copy.deepcopy(ckpt.model)  # the factory's own is shared
    with torch.no_grad():
        w = model.rnn.weight_hh_l0
        w.copy_(scale * torch.eye(w.shape[0]) if scale > 1 else scale * w)
    out = tmp_path / f"relu-{scale}"
    export_bundle(Checkpoint(model, ckpt.vocab, ckpt.tokenizer), out, "none")
    return out


def test_a_relu_rnn_whose_states_settle_passes(tmp_path, bundle_factory, capsys) -> None:
    bundle = _relu_bundle(tmp_path, bundle_factory, 0.2)
    assert state_bound.main(["--bundle", str(bundle), *ARGS]) == 0
    out = capsys.readouterr().out
    assert "rnn relu" in out and "greedy, 50 steps: " in out and "n/a" not in out


def test_a_relu_rnn_whose_states_grow_fails(tmp_path, bundle_factory, capsys) -> None:
    bundle = _relu_bundle(tmp_path, bundle_factory, 4.0)  # h_t >= 4 h_(t-1) where positive
    assert state_bound.main(["--bundle", str(bundle), *ARGS]) == 1
    err = capsys.readouterr().err
    assert "not finite" in err or "still grow" in err


@pytest.mark.parametrize("kw", [{}, {"cell": "gru"}])
def test_a_bounded_cell_passes_at_once(bundle_factory, kw, capsys) -> None:
    bundle, _ = bundle_factory(**kw, **SMALL)
    assert state_bound.main(["--bundle", str(bundle)]) == 0
    assert "bounded by the cell's activation" in capsys.readouterr().out
