"""The loop's counter and histogram are exposed exactly as prometheus_client's own would be."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from herald_gateway.loopmetrics import LoopCounter, LoopHistogram
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
