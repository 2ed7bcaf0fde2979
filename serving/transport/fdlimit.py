"""File handles: the soft RLIMIT_NOFILE raised to the hard limit at start, the share of it that
HTTP connections may take, and a warning that says so at most once a minute when a limit bites."""

from __future__ import annotations

import logging
import os
import resource
import time

log = logging.getLogger("encoder")
UNLIMITED = 1 << 20  # what an RLIM_INFINITY limit counts as when sharing it out


def raise_soft_limit() -> int:
    """Raises the soft open-files limit to the hard one; returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            log.debug("open-files limit raised from %d to %d", soft, hard)
            soft = hard
        except (ValueError, OSError) as e:  # a hard limit the kernel caps lower (nr_open)
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, hard, e)
    return UNLIMITED if soft == resource.RLIM_INFINITY else soft


def soft_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return UNLIMITED if soft == resource.RLIM_INFINITY else soft


def open_files() -> int:
    """File descriptors this process has open now."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one listdir opened
    except OSError:  # no /proc: assume a typical server's count
        return 64


def connection_cap(wanted: int, reserve: int) -> int:
    """Connections one listener may hold: ``wanted``, lowered so that the files open now plus
    ``reserve`` (gRPC connections, the metrics port, files) always stay free; at least 1."""
    room = soft_limit() - open_files() - reserve
    return max(1, min(wanted, room))


class Every:
    """A warning logged at most once per ``seconds``, with how often it happened meanwhile:
    what a client can make happen thousands of times a second costs one line a minute."""

    def __init__(self, seconds: float = 60.0) -> None:
        self.seconds = seconds
        self.count = 0
        self._next = 0.0

    def warn(self, msg: str, *args: object) -> None:
        self.count += 1
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.seconds
            log.warning(msg + " (%d time(s) so far)", *args, self.count)
