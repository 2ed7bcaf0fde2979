"""tools/state_bound.py: a relu RNN whose states settle passes; one whose states grow fails; a
bounded cell passes without being probed."""

from __future__ import annotations

import pytest

from tests.support.samples import SMALL
from tools import state_bound

SIZES = {"repeat": 20, "top": 5, "long": 200, "texts": 2, "text-tokens": 300, "greedy": 50}
ARGS = [x for k, v in SIZES.items() for x in (f"--{k}", str(v))]


def test_a_relu_rnn_whose_states_settle_passes(scaled_relu, capsys) -> None:
    bundle = scaled_relu(0.2)
    assert state_bound.main(["--bundle", str(bundle), *ARGS]) == 0
    out = capsys.readouterr().out
    assert "rnn relu" in out and "greedy, 50 steps: " in out and "n/a" not in out


def test_a_relu_rnn_whose_states_grow_fails(scaled_relu, capsys) -> None:
    bundle = scaled_relu(4.0)  # h_t >= 4 h_(t-1) where positive
    assert state_bound.main(["--bundle", str(bundle), *ARGS]) == 1
    err = capsys.readouterr().err
    assert "not finite" in err or "still grow" in err


@pytest.mark.parametrize("kw", [{}, {"cell": "gru"}])
def test_a_bounded_cell_passes_at_once(bundle_factory, kw, capsys) -> None:
    bundle, _ = bundle_factory(**kw, **SMALL)
    assert state_bound.main(["--bundle", str(bundle)]) == 0
    assert "bounded by the cell's activation" in capsys.readouterr().out
