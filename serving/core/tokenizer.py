"""jieba word segmentation, the one piece of code that export, verification and serving share.

jieba.lcut is the reference. Where the bundle's settings allow (HMM on, no user dictionary) a
fast path gives identical output: rjieba (jieba-rs, the same dictionary and HMM) cuts the text,
and the one place where it differs, ASCII runs holding '-', '.' or '_' that jieba splits, is
re-cut exactly as jieba's finalseg does. tests/unit/test_tokenizer_equivalence.py checks that
the two agree on a large mixed corpus. The settings (TokenizerConfig) are part of the bundle's
manifest.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from zh_rnn_encoder.core.enums import Whitespace
from zh_rnn_encoder.core.errors import UnsafeSetting
from zh_rnn_encoder.core.manifest import TokenizerConfig

if TYPE_CHECKING:  # imported on first need: the fast path never loads jieba's tables
    import jieba

try:
    import rjieba
except ImportError:  # pragma: no cover - the base install has it; jieba alone is still correct
    rjieba = None  # type: ignore[assignment]  # the module or None: the fast path checks

BACKENDS = ("auto", "jieba")
# ASCII tokens rjieba keeps whole and jieba splits.
_RECUT = re.compile(r"[-._]")
# jieba.finalseg.re_skip: how jieba splits an ASCII run that is not a dictionary word.
_FINALSEG_SKIP = re.compile(r"([a-zA-Z0-9]+(?:\.\d+)?%?)")
# The only pure-ASCII words of jieba's dictionary; a token holding one goes to jieba itself.
_ASCII_DICT_WORDS = ("AT&T", "c#", "C#", "c++", "C++")
# Ideographs outside jieba's Han class (re_han_default: U+4E00-U+9FD5) that jieba-rs counts as Han:
# CJK Extension A, U+9FD6-U+9FFF, compatibility ideographs, and planes 2-3 (Extensions B-H and the
# compatibility supplement). jieba emits each alone; jieba-rs's HMM may join a run of them.
_OUTSIDE_CLASS = "[\u3400-\u4dbf\u9fd6-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]"
_HAS_OUTSIDE = re.compile(_OUTSIDE_CLASS).search  # without a group: about 3x faster to scan
_OUTSIDE_RUNS = re.compile(f"({_OUTSIDE_CLASS}+)")


def default_cache_dir() -> Path:
    """Per user: jieba loads its cache with marshal, so a directory others share is unsafe."""
    return Path(tempfile.gettempdir()) / f"zh-rnn-encoder-jieba-{os.getuid()}"


def private_dir(path: Path) -> Path:
    """``path``, created 0700 if missing; UnsafeSetting if another user owns it or may write it.

    jieba's cache is a marshal file that jieba loads as it is: whoever can write the directory
    can replace it.
    """
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise UnsafeSetting(
            f"jieba cache directory {path} must belong to this user (uid {os.getuid()}) and not "
            f"be writable by group or others (owner uid {st.st_uid}, mode {st.st_mode & 0o777:o}); "
            "jieba loads its cache without a check: choose another --jieba-cache-dir"
        )
    return path


class Tokenizer:
    """Segments text as the bundle says, initialised up front so the first request pays nothing.

    ``backend="auto"`` takes the fast path where it can honour the config; ``"jieba"`` forces the
    reference. ``self.backend`` says which one runs.
    """

    def __init__(
        self,
        config: TokenizerConfig = TokenizerConfig(),
        user_dict_path: Path | None = None,
        cache_dir: Path | None = None,
        backend: str = "auto",
    ) -> None:
        if config.user_dict and user_dict_path is None:
            raise ValueError("config names a user dictionary but no path to it was given")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.config = config
        self._user_dict = user_dict_path
        self._cache = private_dir(Path(cache_dir) if cache_dir else default_cache_dir())
        self._jieba: jieba.Tokenizer | None = None
        fast = backend == "auto" and rjieba is not None and config.hmm and not config.user_dict
        self.backend = "rjieba" if fast else "jieba"
        if fast:
            rjieba.cut("初始化")  # loads its dictionary now rather than on the first request
        else:
            self._reference()
        self._drop_ws = config.whitespace is Whitespace.DROP

    def _reference(self) -> jieba.Tokenizer:
        """The private jieba.Tokenizer, built on first need (always, on the reference path)."""
        if self._jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            tk = jieba.Tokenizer()
            tk.tmp_dir = str(self._cache)
            tk.initialize()
            if self._user_dict is not None:
                tk.load_userdict(os.fspath(self._user_dict))
            self._jieba = tk
        return self._jieba

    def tokenize(self, text: str) -> list[str]:
        """Segment one text; the default config returns exactly ``jieba.lcut(text)``."""
        tokens = self._fast(text) if self.backend == "rjieba" else None
        if tokens is None:
            tokens = self._reference().lcut(text, HMM=self.config.hmm)
        if self._drop_ws:
            tokens = [t for t in tokens if not t.isspace()]
        return tokens

    @classmethod
    def _fast(cls, text: str) -> list[str] | None:
        """rjieba, with jieba's own splits where the two differ; None where only jieba can tell."""
        if not _HAS_OUTSIDE(text):  # nearly every text: one scan, ~0.14 µs
            return cls._fast_block(text)
        out: list[str] = []
        for i, part in enumerate(_OUTSIDE_RUNS.split(text)):
            if i % 2:  # a run of ideographs outside jieba's Han class: one token each, as jieba
                out.extend(part)
            elif part:
                tokens = cls._fast_block(part)
                if tokens is None:
                    return None
                out.extend(tokens)
        return out

    @staticmethod
    def _fast_block(text: str) -> list[str] | None:
        """rjieba, with jieba's split of ASCII runs; None where only jieba itself can tell."""
        try:
            cut = rjieba.cut(text)
        except UnicodeEncodeError:  # a lone surrogate: not UTF-8, but jieba cuts it all the same
            return None
        out: list[str] = []
        for tok in cut:
            if len(tok) > 1 and tok.isascii() and _RECUT.search(tok):
                if any(w in tok for w in _ASCII_DICT_WORDS):
                    return None
                out.extend(p for p in _FINALSEG_SKIP.split(tok) if p)
            else:
                out.append(tok)
        return out
