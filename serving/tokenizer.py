"""jieba word segmentation, the one piece of code that export, verification and serving share."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import jieba

WHITESPACE_MODES = ("keep", "drop")


@dataclass(frozen=True)
class TokenizerConfig:
    """How text is segmented; recorded in bundle.json.

    Defaults are exactly ``jieba.lcut(text)``: accurate mode, HMM on, whitespace tokens kept.
    ``user_dict`` is the file name of a jieba user dictionary inside the bundle, or None.
    """

    hmm: bool = True
    user_dict: str | None = None
    whitespace: str = "keep"

    def __post_init__(self) -> None:
        if self.whitespace not in WHITESPACE_MODES:
            raise ValueError(
                f"whitespace must be one of {WHITESPACE_MODES}, got {self.whitespace!r}"
            )

    def to_json(self) -> dict:
        return {"name": "jieba", "jieba_version": jieba.__version__, **asdict(self)}

    @classmethod
    def from_json(cls, d: dict) -> TokenizerConfig:
        return cls(hmm=bool(d["hmm"]), user_dict=d.get("user_dict"), whitespace=d["whitespace"])


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "zh-rnn-encoder-jieba"


class Tokenizer:
    """A private jieba.Tokenizer, initialised up front so the first request pays nothing."""

    def __init__(
        self,
        config: TokenizerConfig = TokenizerConfig(),
        user_dict_path: Path | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        if config.user_dict and user_dict_path is None:
            raise ValueError("config names a user dictionary but no path to it was given")
        self.config = config
        jieba.setLogLevel(logging.WARNING)
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        self._jieba = jieba.Tokenizer()
        self._jieba.tmp_dir = str(cache)
        self._jieba.initialize()
        if user_dict_path is not None:
            self._jieba.load_userdict(os.fspath(user_dict_path))
        self._drop_ws = config.whitespace == "drop"

    def tokenize(self, text: str) -> list[str]:
        """Segment one text; the default config returns exactly ``jieba.lcut(text)``."""
        tokens = self._jieba.lcut(text, HMM=self.config.hmm)
        if self._drop_ws:
            tokens = [t for t in tokens if not t.isspace()]
        return tokens
