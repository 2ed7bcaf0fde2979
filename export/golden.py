"""Golden samples: fixed texts with their ids and eager PyTorch outputs, in every bundle."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from zh_rnn_encoder.core import contract
from zh_rnn_encoder.core.tokenizer import Tokenizer
from zh_rnn_encoder.core.vocab import Vocab
from zh_rnn_encoder.export.model import TorchEncoder
from zh_rnn_encoder.runtime.padding import pad
from zh_rnn_encoder.runtime.session import Session

TUTORIAL_SENTENCE = "北京冬奥的进度条已经过半，不少外国运动员在完成自己的比赛后踏上归途。"

_LONG_PARAGRAPH = (
    "今天早上下了一场小雨，空气变得格外清新。我骑车去公司，路上看到很多人在公园里跑步。"
    "中午和同事一起吃了牛肉面，下午开了两个会，讨论下个季度的计划。"
    "晚上回家做饭，顺便给父母打了个电话，聊了聊最近的天气和家里的小事。"
)

GOLDEN_TEXTS = (
    TUTORIAL_SENTENCE,
    "你好",  # one token
    _LONG_PARAGRAPH * 6,  # several hundred tokens
    "我们在2025年买了3台iPhone 15，价格是5999元。",  # Latin letters and digits
    "魑魅魍魉与饕餮在氪星的犄角旮旯里嘀嘀咕咕。",  # words the default corpus never saw
    "臺灣的夜市很熱鬧，香港的茶餐廳也很有名。",  # traditional characters
    "天气 很好\t我们去 公园吧",  # whitespace inside the text
    "这家店的蛋糕太好吃了😋！",  # emoji
)


def write_golden(
    model: TorchEncoder,
    tokenizer: Tokenizer,
    vocab: Vocab,
    out_dir: Path,
    graph: bytes | None = None,
) -> None:
    """Segment, look up and run each text alone through eager PyTorch, or with ``graph`` through
    that graph in onnxruntime (a quantized bundle's goldens are its own graph's); save texts and
    arrays."""
    tokens = [tokenizer.tokenize(t) for t in GOLDEN_TEXTS]
    ids = [vocab.encode(toks) for toks in tokens]
    padded, lengths = pad(ids, vocab.pad_id)
    seq, dim = padded.shape[1], model.config.output_dim
    states = np.zeros((len(ids), seq, dim), dtype=np.float32)
    final = np.zeros((len(ids), dim), dtype=np.float32)
    run = _eager(model) if graph is None else Session(graph).run
    for i, row in enumerate(ids):
        s, f = run(row[None], np.array([len(row)], np.int64))
        states[i, : len(row)] = s[0]
        final[i] = f[0]
    texts = {"texts": list(GOLDEN_TEXTS), "tokens": tokens, "ids": [r.tolist() for r in ids]}
    (out_dir / contract.GOLDEN_TEXTS_FILE).write_text(
        json.dumps(texts, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    np.savez(
        out_dir / contract.GOLDEN_ARRAYS_FILE,
        ids=padded,
        lengths=lengths,
        states=states,
        final=final,
    )


def _eager(model: TorchEncoder) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]:
    def run(ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.no_grad():
            s, f = model(torch.from_numpy(ids), torch.from_numpy(lengths))
        return s.numpy(), f.numpy()

    return run
