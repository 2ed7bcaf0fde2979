"""The CPUs this process may use, which a container quota can make fewer than the host has."""

from __future__ import annotations

import math
import os
from pathlib import Path


def available_cpus() -> int:
    """CPUs this process may use: affinity mask, capped by a cgroup v2 or v1 CPU quota."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_quota()
    return max(1, min(n, math.ceil(quota))) if quota else max(1, n)


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            q, period = v2.read_text().split()[:2]
            return None if q == "max" else int(q) / int(period)
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 else None
    except (OSError, ValueError):
        return None
