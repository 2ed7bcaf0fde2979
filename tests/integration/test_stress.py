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
    idle_streams=500,
    idle_wait_s=3.0,
    worker_kills=1,
    cancelled_streams=200,
    swaps=2,
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


def test_idle_streams_opened_and_closed_leave_the_server_serving(bundle, jieba_cache) -> None:
    m = stress.probe_idle_streams(bundle, jieba_cache, SCALE).measured
    assert m["streams"] == 500 and m["serves_afterwards"], m


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


def test_every_json_field_and_parameter_of_a_wrong_type_is_a_4xx_naming_it(
    bundle, jieba_cache
) -> None:
    r = stress.probe_json_fields(bundle, jieba_cache, SCALE)
    m = r.measured
    assert r.ok and m["http_cases"] == 8 + 9 * 8 + 8 and m["oip_cases"] == 7 * 9, m
    assert m["error_lines"] == m["tracebacks"] == 0, m
    assert set(m["http_statuses"]) <= {"200", "400", "404"} and m["http_statuses"]["200"] > 0, m


def test_oversized_responses_are_invalid_argument_naming_the_limit(bundle, jieba_cache) -> None:
    r = stress.probe_oversized_responses(bundle, jieba_cache, SCALE)
    cases = r.measured["cases"]
    assert r.ok and r.measured["error_lines"] == r.measured["tracebacks"] == 0, r.measured
    named = ("INVALID_ARGUMENT", "413")
    stream = cases.pop("EncodeStream long tokens")
    assert len(cases) == 10, cases
    for case, outcome in cases.items():
        code, _, message = outcome.partition(" ")
        assert code in named and message.startswith("max_message_bytes exceeded at response"), case
    assert stream.startswith("INVALID_ARGUMENT request #0: max_message_bytes exceeded at response")


def test_cancelled_streams_leave_no_error_in_the_log(bundle, jieba_cache) -> None:
    r = stress.probe_cancelled_streams(bundle, jieba_cache, SCALE)
    assert r.ok and r.measured["error_lines"] == 0, r.measured
    assert r.measured["cancelled"]["EncodeStream waiting for its next request"] == 200


def test_swaps_under_load_fail_no_call(bundle, jieba_cache) -> None:
    m = stress.probe_swap(bundle, jieba_cache, SCALE).measured
    assert m["swaps"] == 2 and m["calls"] > 0 and set(m["codes"]) == {"OK"}, m
    assert len(m["first_new_version_after_signal_s"]) == 2
