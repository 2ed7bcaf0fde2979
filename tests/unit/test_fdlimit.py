"""File handles: the HTTP cap left by the reserve, and a warning that a client can trigger a
thousand times logged once. (The limit raised at start: tests/integration/test_http_front.py.)"""

from __future__ import annotations

import logging

from zh_rnn_encoder.transport import fdlimit


def test_the_cap_leaves_the_reserve_free() -> None:
    room = fdlimit.soft_limit() - fdlimit.open_files()
    assert fdlimit.connection_cap(10, 0) == 10
    assert abs(fdlimit.connection_cap(1 << 30, 100) - (room - 100)) <= 2
    assert fdlimit.connection_cap(10, 1 << 30) == 1  # no room: one, not none


def test_a_repeated_warning_is_one_line(caplog) -> None:
    every = fdlimit.Every(60.0)
    with caplog.at_level(logging.WARNING, logger="encoder"):
        for _ in range(1000):
            every.warn("port %s full", "x")
    assert len(caplog.records) == 1 and every.count == 1000
    assert "port x full (1 time(s) so far)" in caplog.text
