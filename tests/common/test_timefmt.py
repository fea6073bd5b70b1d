"""Timestamps read as datetime's own RFC 3339 text, to the microsecond."""

from __future__ import annotations

import datetime as dt
import time

from hypothesis import given
from hypothesis import strategies as st

from herald_common.timefmt import now_rfc3339, rfc3339_us


def _reference(us: int) -> str:
    moment = dt.datetime.fromtimestamp(us // 1_000_000, dt.UTC).replace(microsecond=us % 1_000_000)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@given(st.integers(min_value=0, max_value=253_402_300_799_999_999))  # up to 9999-12-31T23:59:59.999999
def test_the_same_text_as_datetime(us: int) -> None:
    assert rfc3339_us(us) == _reference(us)


def test_now_is_the_system_clock() -> None:
    before = time.time_ns() // 1000
    text = now_rfc3339()
    after = time.time_ns() // 1000
    assert _reference(before)[:19] <= text[:19] <= _reference(after)[:19]
    assert text.endswith("Z") and len(text) == 27
