"""A short run of the reliability probes (tools/stress/) inside `make test`: what they prove
about correctness. Their bounds on time and memory are `make stress`'s, on an idle machine."""

from __future__ import annotations

import pytest

from tests.support.samples import SMALL
from tools import stress

SCALE = stress.Scale(
    storm_clients=32,
    storm_seconds=2.0,
    storm_texts=32,
    big_requests=4,
    unread_streams=1,
    sigterm_clients=6,
    fuzz_cases=2_000,
)


@pytest.fixture(scope="module")
def bundle(bundle_factory):
    return bundle_factory(cell="gru", **SMALL)[0]


def test_storm_sheds_and_stays_correct(bundle, jieba_cache) -> None:
    m = stress.probe_storm(bundle, jieba_cache, SCALE, budget_mb=1e9).measured
    assert m["codes"].get("OK", 0) > 0
    assert set(m["codes"]) <= {"OK", "RESOURCE_EXHAUSTED"}, m["codes"]
    assert m["post_storm_vector_identical"]


def test_http_storm_sheds_and_stays_correct(bundle, jieba_cache) -> None:
    m = stress.probe_http_storm(bundle, jieba_cache, SCALE, budget_mb=1e9).measured
    assert m["codes"].get("200", 0) > 0
    assert set(m["codes"]) <= {"200", "429"}, m["codes"]
    assert m["post_storm_vector_identical"]


def test_unread_streams_do_not_stop_the_server(bundle, jieba_cache) -> None:
    m = stress.probe_unread_streams(bundle, jieba_cache, SCALE, budget_mb=1e9).measured
    assert m["serves_afterwards"]


def test_no_request_sent_before_sigterm_is_lost(bundle, jieba_cache) -> None:
    m = stress.probe_sigterm(bundle, jieba_cache, SCALE).measured
    assert m["sent_before_signal"] > 0 and m["lost"] == 0 and m["exit_code"] == 0, m
    assert m["before_signal_by_protocol"]["http"] > 0 and m["before_signal_by_protocol"]["oip"] > 0


def test_wire_fuzz_never_internal(bundle, jieba_cache) -> None:
    r = stress.probe_wire_fuzz(bundle, jieba_cache, SCALE)
    assert r.ok and r.measured["cases"] >= 1_900 and r.measured["http_cases"] >= 200, r.measured


def test_client_behaviour_is_not_logged_as_server_errors(bundle, jieba_cache) -> None:
    r = stress.probe_log_hygiene(bundle, jieba_cache, SCALE)
    assert r.ok, r.measured
