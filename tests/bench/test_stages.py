"""Reading the api's and the bridge's metrics: the Prometheus text, and per-step rates and maxima."""

from __future__ import annotations

import math

from herald_bench.stages import Snapshot, bucket_quantiles, parse, post_buckets, summarise

TEXT = """\
# HELP herald_api_outbox_backlog Events committed but not yet acknowledged by JetStream.
# TYPE herald_api_outbox_backlog gauge
herald_api_outbox_backlog 12.0
herald_api_requests_total{method="POST",route="/api/publish",status="202"} 40.0
herald_api_requests_total{method="GET",route="/metrics",status="200"} 2.0
herald_api_requests_created{method="POST",route="/api/publish",status="202"} 1.7e9
herald_bridge_events_total 7.0
herald_bridge_events_created 1.7e9
herald_bridge_lag_seconds NaN
"""


def test_values_are_summed_over_label_sets_and_created_stamps_skipped() -> None:
    values = parse(TEXT)
    assert values == {
        "herald_api_outbox_backlog": 12.0,
        "herald_api_requests_total": 42.0,
        "herald_bridge_events_total": 7.0,
    }


def test_summary_gives_window_rates_gauge_maxima_and_marks_missing_metrics() -> None:
    start = Snapshot(0.0, {"herald_api_outbox_published": 100.0, "herald_api_outbox_backlog": 0.0})
    middle = Snapshot(1.0, {"herald_api_outbox_published": 300.0, "herald_api_outbox_backlog": 50.0})
    window_end = Snapshot(2.0, {"herald_api_outbox_published": 500.0, "herald_api_outbox_backlog": 20.0})
    end = Snapshot(3.0, {"herald_api_outbox_published": 600.0, "herald_api_outbox_backlog": 0.0})
    out = summarise(start, window_end, end, [middle])
    assert out["herald_api_outbox_published"] == {"in_window": 400, "per_s_in_window": 200.0, "until_drained": 500}
    assert out["herald_api_outbox_backlog"] == {"max": 50.0, "at_window_end": 20.0, "at_end": 0.0}
    assert out["herald_api_events_direct"] is None
    assert out["herald_bridge_lag_events"] is None
    assert out["api_post_seconds"] == {}


HISTOGRAM = """\
herald_api_request_seconds_bucket{le="0.005",method="POST",route="/api/publish"} 10.0
herald_api_request_seconds_bucket{le="0.05",method="POST",route="/api/publish"} 60.0
herald_api_request_seconds_bucket{le="0.5",method="POST",route="/api/publish"} 109.0
herald_api_request_seconds_bucket{le="+Inf",method="POST",route="/api/publish"} 110.0
herald_api_request_seconds_bucket{le="0.005",method="GET",route="/metrics"} 4.0
"""


def test_post_buckets_are_read_per_route_and_quantiles_are_bucket_bounds() -> None:
    routes = post_buckets(HISTOGRAM)
    assert routes == {"/api/publish": {0.005: 10.0, 0.05: 60.0, 0.5: 109.0, math.inf: 110.0}}
    before = {0.005: 10.0, 0.05: 10.0, 0.5: 10.0, math.inf: 10.0}
    # 100 requests in the step: 50 under 50 ms, 49 more under 500 ms, 1 beyond the last bound
    assert bucket_quantiles(before, routes["/api/publish"]) == {
        "requests": 100,
        "p50_ms_at_most": 50.0,
        "p99_ms_at_most": 500.0,
    }
    assert bucket_quantiles(routes["/api/publish"], routes["/api/publish"])["requests"] == 0
    only_slow = {0.5: 0.0, math.inf: 5.0}
    assert bucket_quantiles({}, only_slow)["p99_ms_at_most"] == ">500"
