"""`make stress`: the reliability suite. Each probe starts a real server process, does to it what
an unkind client or an operator does, measures, and checks the bound it promises.

`python -m tools.stress [--quick] [--only NAME ...]` prints one JSON line per probe and a
markdown table, writes bench/results/stress.json, and exits 1 if a bound is broken. The quick
scale is what `make test` runs (tests/integration/test_stress.py); every probe targets only
127.0.0.1 and is bounded in requests and time. A later transport adds its own calls to the same
probes.
"""

from __future__ import annotations

from collections.abc import Callable

from tools.stress.cancellation import probe_cancelled_streams
from tools.stress.common import FULL, QUICK, Result, Scale
from tools.stress.errors import probe_json_fields, probe_oversized_responses
from tools.stress.faults import probe_sigterm, probe_stall
from tools.stress.http_front import probe_header_flood, probe_idle_connections, probe_url_flood
from tools.stress.hygiene import probe_log_hygiene, probe_wire_fuzz
from tools.stress.load import (
    probe_big_requests,
    probe_http_storm,
    probe_storm,
    probe_unread_streams,
)
from tools.stress.recovery import probe_idle_streams, probe_worker_readiness
from tools.stress.swap import probe_swap

__all__ = ["FULL", "MEMORY_PROBES", "PROBES", "QUICK", "Result", "Scale"]

PROBES: dict[str, Callable] = {
    "storm": probe_storm,
    "http storm": probe_http_storm,
    "big requests": probe_big_requests,
    "unread streams": probe_unread_streams,
    "stall": probe_stall,
    "sigterm": probe_sigterm,
    "log hygiene": probe_log_hygiene,
    "wire fuzz": probe_wire_fuzz,
    "header flood": probe_header_flood,
    "url flood": probe_url_flood,
    "idle connections": probe_idle_connections,
    "json fields": probe_json_fields,
    "oversized responses": probe_oversized_responses,
    "cancelled streams": probe_cancelled_streams,
    "idle streams": probe_idle_streams,
    "worker readiness": probe_worker_readiness,
    "swap under load": probe_swap,
}
MEMORY_PROBES = {"storm", "http storm", "big requests", "unread streams"}
