from pathlib import Path

import jieba
import pytest

from tests.support.samples import TUTORIAL, TUTORIAL_TOKENS
from zh_rnn_encoder.core.manifest import TokenizerConfig
from zh_rnn_encoder.core.tokenizer import Tokenizer

MIXED = "我 爱\t北京 COVID-19 example.com 3.14"


def test_tutorial_sentence_gives_19_tokens(tokenizer: Tokenizer, jieba_cache: Path) -> None:
    assert tokenizer.tokenize(TUTORIAL) == TUTORIAL_TOKENS
    reference = Tokenizer(cache_dir=jieba_cache, backend="jieba")
    assert reference.backend == "jieba" and reference.tokenize(TUTORIAL) == TUTORIAL_TOKENS


def test_mixed_scripts_as_jieba_lcut(tokenizer: Tokenizer) -> None:
    expected = [
        "我",
        " ",
        "爱",
        "\t",
        "北京",
        " ",
        "COVID",
        "-",
        "19",
        " ",
        "example",
        ".",
        "com",
        " ",
        "3.14",
    ]
    assert tokenizer.tokenize(MIXED) == expected
    for text in ["臺灣的夜市很熱鬧", "iPhone15价格5999元", "😋好吃", "ａｂｃ１２３，。"]:
        assert tokenizer.tokenize(text) == jieba.lcut(text)


def test_whitespace_drop(jieba_cache: Path) -> None:
    tok = Tokenizer(TokenizerConfig(whitespace="drop"), cache_dir=jieba_cache)
    assert tok.tokenize(MIXED)[:4] == ["我", "爱", "北京", "COVID"]


def test_hmm_off_leaves_unseen_words_split(jieba_cache: Path, tokenizer: Tokenizer) -> None:
    text = "他来到了网易杭研大厦"
    assert "杭研" in tokenizer.tokenize(text)
    off = Tokenizer(TokenizerConfig(hmm=False), cache_dir=jieba_cache).tokenize(text)
    assert "杭研" not in off and "".join(off) == text


def test_user_dictionary(tmp_path: Path, jieba_cache: Path, tokenizer: Tokenizer) -> None:
    assert tokenizer.tokenize("北京冬奥开幕")[:2] == ["北京", "冬奥"]
    d = tmp_path / "dict.txt"
    d.write_text("北京冬奥 1000 n\n", encoding="utf-8")
    tok = Tokenizer(TokenizerConfig(user_dict="dict.txt"), d, cache_dir=jieba_cache)
    assert tok.tokenize("北京冬奥开幕")[0] == "北京冬奥"
    # the user dictionary stays private to its tokenizer
    assert tokenizer.tokenize("北京冬奥开幕")[:2] == ["北京", "冬奥"]


def test_cache_goes_where_configured(tmp_path: Path) -> None:
    Tokenizer(cache_dir=tmp_path / "c", backend="jieba")
    assert list((tmp_path / "c").glob("*.cache"))


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="whitespace"):
        TokenizerConfig(whitespace="strip")
    with pytest.raises(ValueError, match="user dictionary"):
        Tokenizer(TokenizerConfig(user_dict="x.txt"))


def test_cache_directory_must_be_private(tmp_path: Path) -> None:
    from zh_rnn_encoder.core.errors import UnsafeSetting

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafeSetting, match="not be writable by group or others"):
        Tokenizer(cache_dir=shared)
    fresh = tmp_path / "fresh" / "cache"
    Tokenizer(cache_dir=fresh)
    assert fresh.stat().st_mode & 0o777 == 0o700
