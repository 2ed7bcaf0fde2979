from pathlib import Path

import pytest

from zh_rnn_encoder.runtime.cpus import available_cpus, cgroup_quota
from zh_rnn_encoder.runtime.models import ModelSpec
from zh_rnn_encoder.transport.config import from_args


def test_defaults_and_flags() -> None:
    cfg = from_args(["--bundle", "b"], env={})
    rt = cfg.runtime
    assert cfg.listen == "127.0.0.1:50051" and rt.device == "cpu"
    assert rt.limits.max_tokens_per_text == 512 and rt.intra_op_threads == available_cpus()
    cfg = from_args(["--bundle", "b", "--max-tokens-per-text", "64", "--threads", "3"], env={})
    assert cfg.runtime.limits.max_tokens_per_text == 64 and cfg.runtime.intra_op_threads == 3


def test_every_flag_has_an_env_variable_and_flags_win() -> None:
    env = {
        "BUNDLE": "/b",
        "LISTEN": "0.0.0.0:9",
        "MAX_TEXTS_PER_REQUEST": "5",
        "BATCH_WAIT_MS": "2.5",
        "JIEBA_CACHE_DIR": "/tmp/j",
        "GRACE_PERIOD_S": "3",
    }
    cfg = from_args([], env=env)
    rt = cfg.runtime
    assert (str(cfg.bundle), cfg.listen, rt.limits.max_texts_per_request) == ("/b", "0.0.0.0:9", 5)
    assert rt.batch_wait_ms == 2.5 and cfg.grace_period_s == 3.0
    assert rt.jieba_cache_dir == Path("/tmp/j")
    assert from_args(["--listen", "[::]:1"], env=env).listen == "[::]:1"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--bundle", "b", "--device", "tpu"],
        ["--bundle", "b", "--max-texts-per-request", "0"],
        ["--bundle", "b", "--threads", "x"],
    ],
)
def test_bad_configuration_is_refused(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as e:
        from_args(argv, env={})
    assert e.value.code == 2 and "encoder-serve: error" in capsys.readouterr().err


def testcgroup_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_quota(v1) == 3.0
    assert cgroup_quota(tmp_path / "none") is None


PIN = "ab" * 32


def test_model_flags_serve_several_bundles_the_first_the_default() -> None:
    cfg = from_args(["--model", "general=/b/g", "--model", f"news=/b/n@sha256:{PIN}"], env={})
    assert cfg.served_models == (
        ModelSpec("general", Path("/b/g")),
        ModelSpec("news", Path("/b/n"), PIN),
    )
    assert cfg.bundle is None
    one = from_args(
        ["--bundle", "/b/x", "--model-name", "m", "--expect-bundle-sha256", PIN], env={}
    )
    assert one.models == () and one.served_models == (ModelSpec("m", Path("/b/x"), PIN),)


def test_model_variable_lists_them_and_flags_win() -> None:
    env = {"MODEL": "a=/b/a, b=/b/b"}
    assert [m.name for m in from_args([], env=env).served_models] == ["a", "b"]
    assert [m.name for m in from_args(["--model", "c=/b/c"], env=env).served_models] == ["c"]
    # a worker is started with its parent's argv and environment: the same models
    assert from_args([], env=env).served_models == from_args([], env=dict(env)).served_models


@pytest.mark.parametrize(
    ("argv", "env", "words"),
    [
        (["--model", "general"], {}, "expected NAME=PATH"),
        (["--model", "=/b/a"], {}, "expected NAME=PATH"),
        (["--model", "a="], {}, "expected NAME=PATH"),
        (["--model", "a=/x", "--model", "a=/y"], {}, "'a' given twice"),
        (["--model", "zh/news=/b/n"], {}, "without '/'"),
        (["--model", "a=/x", "--bundle", "/y"], {}, "--model and --bundle"),
        (["--model", "a=/x"], {"BUNDLE": "/y"}, "--model and --bundle"),
        (["--model", "a=/x", "--model-name", "m"], {}, "--model-name names the one --bundle"),
        (["--model", "a=/x", "--expect-bundle-sha256", PIN], {}, "NAME=PATH@sha256:HEX"),
        (["--bundle", "/x", "--model-name", "a/b"], {}, "without '/'"),
        ([], {}, "--bundle PATH or --model NAME=PATH"),
    ],
)
def test_bad_model_forms_are_refused_saying_why(argv, env, words: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        from_args(argv, env=env)
    err = capsys.readouterr().err
    assert e.value.code == 2 and words in err, err
