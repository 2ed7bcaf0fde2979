import json
import random
from pathlib import Path

import numpy as np
import pytest

from zh_rnn_encoder.core.vocab import PAD, UNK, Vocab

TEXTS = [["我", "爱", "北京"], ["北京", "欢迎", "你"], ["我", "爱", "你", " "], ["北京"]]


def test_reserved_ids_and_order() -> None:
    v = Vocab.build(TEXTS)
    assert (v.pad_id, v.unk_id) == (0, 1)
    # counts: 北京 3; 我 2, 爱 2, 你 2; others 1 -> ties broken by the token itself
    assert v.tokens == [PAD, UNK, "北京", "你", "我", "爱", " ", "欢迎"]


def test_same_corpus_same_ids_whatever_the_line_order() -> None:
    shuffled = TEXTS[:]
    random.Random(1).shuffle(shuffled)
    assert Vocab.build(TEXTS).tokens == Vocab.build(shuffled).tokens


def test_min_freq_and_max_size() -> None:
    assert Vocab.build(TEXTS, min_freq=2).tokens == [PAD, UNK, "北京", "你", "我", "爱"]
    assert Vocab.build(TEXTS, max_size=4).tokens == [PAD, UNK, "北京", "你"]
    with pytest.raises(ValueError):
        Vocab.build(TEXTS, max_size=1)


def test_encode_maps_unknown_words() -> None:
    v = Vocab.build(TEXTS)
    ids = v.encode(["北京", "上海", "你"])
    assert ids.dtype == np.int64 and ids.tolist() == [2, 1, 3]


def test_round_trip_keeps_whitespace_tokens(tmp_path: Path) -> None:
    v = Vocab([PAD, UNK, "\n", "\t", " ", '"', "北京"])
    v.save(tmp_path / "v.json")
    text = (tmp_path / "v.json").read_text(encoding="utf-8")
    assert '"北京"' in text and len(text.splitlines()) == len(v) + 2  # one token a line
    assert Vocab.load(tmp_path / "v.json").tokens == v.tokens


def test_load_rejects_inconsistent_files(tmp_path: Path) -> None:
    p = tmp_path / "v.json"
    d = json.loads(Vocab([PAD, UNK, "a"]).to_json())
    d["size"] = 5
    p.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(ValueError, match="header says 5"):
        Vocab.load(p)
    with pytest.raises(ValueError, match="duplicate"):
        Vocab([PAD, UNK, "a", "a"])
    with pytest.raises(ValueError, match="reserved"):
        Vocab(["a", UNK])


def test_default_corpus_is_shipped(default_corpus: Path) -> None:
    lines = default_corpus.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "北京冬奥的进度条已经过半，不少外国运动员在完成自己的比赛后踏上归途。"
    assert len(lines) >= 300 and all(x.strip() for x in lines)
