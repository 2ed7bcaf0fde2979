"""encoder-export triton: Triton's own model_config.proto parses the config, which names exactly
the copied graph's I/O; the graph, fed as Triton's onnxruntime backend feeds it, reproduces the
golden samples; the CLI refuses a bad bundle and an existing entry."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.support import stock
from tests.support.samples import SMALL
from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.bundle import load_bundle
from zh_rnn_encoder.core.manifest import sha256_file
from zh_rnn_encoder.export.cli import main, parser
from zh_rnn_encoder.export.triton import config_text, write_repository

MODELS = {
    "rnn": {},
    "lstm-bi-2": {"cell": "lstm", "bidirectional": True, "num_layers": 2, **SMALL},
}
# ONNX element types as Triton's DataType names them.
TRITON_TYPES = {onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.FLOAT: "TYPE_FP32"}


def _parsed(entry: Path) -> dict:
    return stock.run("triton_config", {"path": str(entry / "config.pbtxt")})


def _graph_io(values: list[onnx.ValueInfoProto]) -> list[tuple[str, str, list[int | str]]]:
    """(name, Triton type, dims: int, or the symbolic name of a dynamic axis)."""
    return [
        (
            v.name,
            TRITON_TYPES[v.type.tensor_type.elem_type],
            [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
        )
        for v in values
    ]


def _ints(dims: list[str]) -> list[int]:
    return [int(d) for d in dims]  # int64 fields come out of JSON as strings


def _graph_sees(entry: dict) -> list[int]:
    """The shape the backend hands the graph: the batch axis, then dims or their reshape."""
    return [-1, *_ints(entry["reshape"]["shape"] if "reshape" in entry else entry["dims"])]


def _matches(config_dims: list[int], graph_dims: list[int | str]) -> bool:
    """-1 where the graph's axis is dynamic, its size where it is fixed."""
    return len(config_dims) == len(graph_dims) and all(
        c == (-1 if isinstance(g, str) else g) for c, g in zip(config_dims, graph_dims)
    )


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
@pytest.mark.parametrize("spec", MODELS)
def test_config_parses_with_tritons_proto_and_names_the_graphs_io(
    tmp_path: Path, bundle_factory, spec: str, kind: str
) -> None:
    bundle, _ = bundle_factory(**MODELS[spec])
    entry = write_repository(bundle, tmp_path / "repo", "zh-enc", kind, 32)
    assert entry == tmp_path / "repo" / "zh-enc"
    cfg = _parsed(entry)
    graph = onnx.load(entry / "1" / "model.onnx").graph
    d = load_bundle(bundle).model.output_dim

    assert cfg["name"] == "zh-enc" and cfg["platform"] == "onnxruntime_onnx"
    assert cfg["max_batch_size"] == 32
    # Triton stacks requests along the first axis: the config names the graph's required inputs
    # (the optional initial state has a default in the graph) and its batch-first outputs (the
    # final state is [layers*directions, batch, hidden]).
    defaults = {t.name for t in graph.initializer}
    required = [t for t in graph.input if t.name not in defaults]
    assert all(t.name in defaults for t in graph.input[len(required) :])
    batch = required[0].type.tensor_type.shape.dim[0].dim_param
    batch_first = [t for t in graph.output if t.type.tensor_type.shape.dim[0].dim_param == batch]
    assert len(batch_first) == 2 and len(graph.output) > 2
    for field, values in (("input", required), ("output", batch_first)):
        got = [(t["name"], t["data_type"]) for t in cfg[field]]
        assert got == [(n, t) for n, t, _ in _graph_io(values)]
        for t, (_, _, dims) in zip(cfg[field], _graph_io(values)):
            assert _matches(_graph_sees(t), dims), (t, dims)
    ids, lengths = cfg["input"]
    assert _ints(ids["dims"]) == [-1] and "reshape" not in ids
    assert _ints(lengths["dims"]) == [1] and lengths["reshape"] == {"shape": []}
    assert [_ints(t["dims"]) for t in cfg["output"]] == [[-1, d], [d]]
    assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == "0"
    [group] = cfg["instance_group"]
    assert (group["kind"], group["count"]) == (f"KIND_{kind.upper()}", 1)


def _fits(shape: tuple[int, ...], entry: dict) -> bool:
    """A tensor of ``shape`` is one that the config's [batch] + dims admits."""
    dims = _ints(entry["dims"])
    return len(shape) == 1 + len(dims) and all(d in (-1, n) for d, n in zip(dims, shape[1:]))


def _delivered(entry: dict, request: np.ndarray) -> np.ndarray:
    """A request's tensor as the backend delivers it: checked against [batch] + dims, then
    reshaped per the config."""
    assert _fits(request.shape, entry), (entry["name"], request.shape)
    if "reshape" in entry:
        return request.reshape(request.shape[0], *_ints(entry["reshape"]["shape"]))
    return request


@pytest.mark.parametrize("spec", MODELS)
def test_the_graph_fed_as_triton_feeds_it_reproduces_the_golden_samples(
    tmp_path: Path, bundle_factory, spec: str
) -> None:
    bundle, _ = bundle_factory(**MODELS[spec])
    entry = write_repository(bundle, tmp_path / "repo")
    cfg = _parsed(entry)
    b = load_bundle(bundle)
    g, pad = b.golden, b.vocab.pad_id
    session = ort.InferenceSession(
        str(entry / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    bucket = np.full((len(g.texts), g.ids.shape[1] + 5), pad, dtype=np.int64)
    bucket[:, : g.ids.shape[1]] = g.ids  # padded further, as a client pads to a length bucket
    batches = [(g.ids, g.lengths, range(len(g.texts))), (bucket, g.lengths, range(len(g.texts)))]
    batches += [(g.ids[i : i + 1, :n], g.lengths[i : i + 1], [i]) for i, n in enumerate(g.lengths)]
    for ids, lengths, rows in batches:
        # what a client sends: [batch] + dims, so the lengths as [batch, 1]
        request = {"ids": ids, "lengths": lengths[:, None]}
        feeds = {t["name"]: _delivered(t, request[t["name"]]) for t in cfg["input"]}
        outputs = session.run([t["name"] for t in cfg["output"]], feeds)
        for t, out in zip(cfg["output"], outputs):
            assert _fits(out.shape, t) and len(out) == len(rows), (t["name"], out.shape)
        states, final = outputs
        for j, i in enumerate(rows):
            n = g.lengths[i]
            np.testing.assert_allclose(states[j, :n], g.states[i, :n], atol=contract.GOLDEN_ATOL)
            np.testing.assert_allclose(final[j], g.final[i], atol=contract.GOLDEN_ATOL)
            assert not states[j, n:].any()  # zeros past the true length, padding or not


def test_cli_writes_the_entry_and_refuses_an_existing_one_without_force(
    tmp_path: Path, bundle_factory, capsys: pytest.CaptureFixture
) -> None:
    assert "triton" in parser().format_help()
    bundle, _ = bundle_factory()
    repo = tmp_path / "repo"
    args = ["triton", "--bundle", str(bundle), "--out", str(repo)]
    assert main(args) == 0
    entry = repo / "encoder"
    assert sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*")) == [
        "1",
        "1/model.onnx",
        "config.pbtxt",
    ]
    b = load_bundle(bundle)
    assert (entry / "1" / "model.onnx").read_bytes() == b.graph_path.read_bytes()
    assert sha256_file(entry / "1" / "model.onnx") == b.file_hashes["model.onnx"]
    assert (entry / "config.pbtxt").read_text(encoding="utf-8") == config_text(
        b, "encoder", "cpu", 64
    )

    (entry / "stray.txt").write_text("x", encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert "exists and is not empty (--force replaces it)" in capsys.readouterr().err
    assert (entry / "stray.txt").exists()  # refused: untouched
    assert main([*args, "--force", "--kind", "gpu"]) == 0
    assert not (entry / "stray.txt").exists()
    assert "kind: KIND_GPU" in (entry / "config.pbtxt").read_text(encoding="utf-8")
    assert [p.name for p in repo.iterdir()] == ["encoder"]  # no partial entry left behind


@pytest.mark.parametrize(
    "bad", [["--name", "../up"], ["--name", ".hidden"], ["--max-batch-size", "0"]]
)
def test_cli_refuses_bad_options(
    tmp_path: Path, bundle_factory, capsys: pytest.CaptureFixture, bad: list[str]
) -> None:
    bundle, _ = bundle_factory()
    with pytest.raises(SystemExit) as e:
        main(["triton", "--bundle", str(bundle), "--out", str(tmp_path / "repo"), *bad])
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()


def test_cli_refuses_a_corrupted_bundle_naming_the_graph(tmp_path: Path, bundle_factory) -> None:
    bundle, _ = bundle_factory()
    broken = shutil.copytree(bundle, tmp_path / "broken")
    graph = bytearray((broken / "model.onnx").read_bytes())
    graph[len(graph) // 2] ^= 0xFF
    (broken / "model.onnx").write_bytes(bytes(graph))
    repo = tmp_path / "repo"
    p = subprocess.run(
        [sys.executable, "-m", "zh_rnn_encoder.export.cli", "triton"]
        + ["--bundle", str(broken), "--out", str(repo)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    assert "model.onnx: sha256 mismatch" in p.stderr
    assert "Traceback" not in p.stderr
    assert not repo.exists()
