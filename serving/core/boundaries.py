"""Where a text may be cut so that its tokens stay the same: tokens(A) + tokens(B) == tokens(A+B).

jieba first splits a text into blocks: runs of its Han class (U+4E00-U+9FD5, ASCII letters and
digits, and + # & . _ % -), segmented as words, and everything else, emitted a character at a
time except "\\r\\n", kept whole. A cut between two characters of one such run can change how the
run is segmented; a cut anywhere else falls where jieba cuts anyway. Resumable encoding continues
a text from its state only across such a cut (docs: README, "Resumable encoding").
"""

from __future__ import annotations

import re

# jieba's re_han_default, the class of the characters it segments as words.
_HAN = re.compile(r"[\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]")


def is_boundary(text: str, at: int) -> bool:
    """Whether cutting ``text`` before index ``at`` keeps its tokens (0 and len(text) are)."""
    if at <= 0 or at >= len(text):
        return True
    a, b = text[at - 1], text[at]
    if a == "\r" and b == "\n":
        return False
    return not (_HAN.match(a) and _HAN.match(b))


def last_boundary(text: str, end: int | None = None) -> int:
    """The last cut at or before ``end`` (default: the text's end, excluded) that keeps the
    tokens, other than 0; 0 if there is none. What a stream keeps back for the next piece."""
    at = len(text) - 1 if end is None else min(end, len(text) - 1)
    while at > 0 and not is_boundary(text, at):
        at -= 1
    return at


def split_text(text: str, max_chars: int) -> list[str]:
    """Pieces of at most ``max_chars`` characters, each cut where the tokens stay the same, so
    encoding them in turn, each from the previous one's state, equals encoding the text. A run
    of word characters longer than ``max_chars`` (no cut possible) becomes one longer piece."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    pieces, start = [], 0
    while len(text) - start > max_chars:
        at = last_boundary(text, start + max_chars)
        if at <= start:  # no cut in reach: extend to the run's end
            at = start + max_chars
            while at < len(text) and not is_boundary(text, at):
                at += 1
        pieces.append(text[start:at])
        start = at
    if start < len(text):
        pieces.append(text[start:])
    return pieces
