"""The store time the gateway's latency metric is measured from (``Nats-Time-Stamp``)."""

from __future__ import annotations

import datetime as dt

import pytest

from herald_gateway.observe import stored_at


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-12-01T11:59:26.94040467Z", dt.datetime(2026, 12, 1, 11, 59, 26, tzinfo=dt.UTC).timestamp() + 0.94040467),
        ("2026-12-01T11:59:26.5Z", dt.datetime(2026, 12, 1, 11, 59, 26, 500000, tzinfo=dt.UTC).timestamp()),
        ("2026-12-01T11:59:27Z", dt.datetime(2026, 12, 1, 11, 59, 27, tzinfo=dt.UTC).timestamp()),
        ("1999-12-31T23:59:59.999999999Z", dt.datetime(2000, 1, 1, tzinfo=dt.UTC).timestamp() - 1e-9),
    ],
)
def test_a_stamp_is_read_as_a_unix_time(stamp: str, expected: float) -> None:
    # Twice: the second read comes from the remembered whole seconds.
    for _ in range(2):
        assert stored_at({"Nats-Time-Stamp": stamp}) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("stamp", ["", "2026-12-01", "2026-13-01T11:59:26.5Z", "2026-12-01T11:59:26.xZ"])
def test_no_or_a_broken_stamp_gives_none(stamp: str) -> None:
    assert stored_at({"Nats-Time-Stamp": stamp}) is None
    assert stored_at({}) is None
