"""The split rule: near-duplicates share a group, a group's hash picks its split, once and for all.

A text's key is NFKC, lower case, without punctuation or whitespace; its group is the key's first
20 characters, so texts that start alike (templates, copies with a changed ending) never sit on
both sides of the line. sha1 of the group's UTF-8 bytes, first 8 hex digits as an integer, modulo
10: 0 is test, 1 validation, the rest train. The rule reads no other text, so it is the same on
any machine, for any subset, in any order.
"""

from __future__ import annotations

import hashlib
import unicodedata

TRAIN, VALID, TEST = "train", "valid", "test"
SPLITS = (TRAIN, VALID, TEST)
GROUP_CHARS = 20
RULE = (
    "key = NFKC, lower case, punctuation and whitespace removed; keys under both labels dropped; "
    f"group = first {GROUP_CHARS} characters of the key; int(sha1(group)[:8], 16) % 10: "
    "0 test, 1 valid, else train"
)


def key_of(text: str) -> str:
    """NFKC, lower case, every punctuation, symbol-separator and whitespace character removed."""
    s = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in s if not _dropped(c))


def _dropped(c: str) -> bool:
    cat = unicodedata.category(c)
    return c.isspace() or cat[0] in "PZC"


def group_of(key: str) -> str:
    """The group a key belongs to: texts that start alike share it, and so a split."""
    return key[:GROUP_CHARS]


def split_of(key: str) -> str:
    group = group_of(key)
    bucket = int(hashlib.sha1(group.encode("utf-8")).hexdigest()[:8], 16) % 10
    return TEST if bucket == 0 else VALID if bucket == 1 else TRAIN
