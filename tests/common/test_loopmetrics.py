"""The loop's counter and histogram are exposed exactly as prometheus_client's own would be."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from herald_common.loopmetrics import LoopCounter, LoopCounters, LoopHistogram, LoopHistograms
from herald_gateway.metrics import LATENCY_BUCKETS


def _exposed(registry: CollectorRegistry) -> list[str]:
    """The exposition's lines, without prometheus_client's ``_created`` samples."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


@given(
    st.lists(
        st.one_of(
            st.floats(min_value=0, max_value=20, allow_nan=False),
            st.sampled_from([*LATENCY_BUCKETS, 0.0, math.inf]),  # values on a bound, and past the last
        ),
        max_size=60,
    )
)
def test_a_histogram_matches_prometheus_client(values: list[float]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("h_seconds", "a histogram", LATENCY_BUCKETS, ours)
    reference = Histogram("h_seconds", "a histogram", buckets=LATENCY_BUCKETS, registry=theirs)
    for value in values:
        loop.observe(value)
        reference.observe(value)
    assert _exposed(ours) == _exposed(theirs)


def test_a_counter_matches_prometheus_client_and_only_goes_up() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopCounter("c", "a counter", ours)
    reference = Counter("c", "a counter", registry=theirs)
    for amount in (1, 2.5, 0, 40):
        loop.inc(amount)
        reference.inc(amount)
    loop.inc()
    reference.inc()
    assert _exposed(ours) == _exposed(theirs)
    assert ours.get_sample_value("c_total") == 44.5
    with pytest.raises(ValueError, match="only go up"):
        loop.inc(-1)


def test_a_name_is_registered_once() -> None:
    registry = CollectorRegistry(auto_describe=True)
    LoopCounter("dup", "first", registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        LoopCounter("dup", "second", registry)


@given(
    st.lists(
        st.tuples(st.sampled_from(["GET", "POST"]), st.sampled_from(["/a", "/b"]), st.floats(0, 20, allow_nan=False)),
        max_size=40,
    )
)
def test_labelled_families_match_prometheus_client(observed: list[tuple[str, str, float]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counters = LoopCounters("r", "requests", ["method", "route"], ours)
    histograms = LoopHistograms("t_seconds", "times", ["method", "route"], Histogram.DEFAULT_BUCKETS, ours)
    reference_counter = Counter("r", "requests", ["method", "route"], registry=theirs)
    reference_histogram = Histogram("t_seconds", "times", ["method", "route"], registry=theirs)
    for method, route, value in observed:
        counters.labels(method, route).inc()
        histograms.labels(method, route).observe(value)
        reference_counter.labels(method, route).inc()
        reference_histogram.labels(method, route).observe(value)
    assert sorted(_exposed(ours)) == sorted(_exposed(theirs))


def test_a_family_takes_exactly_its_label_values() -> None:
    counters = LoopCounters("f", "a family", ["a", "b"], CollectorRegistry())
    assert counters.labels("x", "y") is counters.labels("x", "y")
    with pytest.raises(ValueError, match="2 label values"):
        counters.labels("x")
