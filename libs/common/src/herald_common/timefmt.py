"""Timestamps as RFC 3339 UTC text with microseconds, e.g. ``2024-05-01T12:00:00.000001Z``.

Herald writes one for every message it stores and every event it emits; building a
``datetime`` and formatting it each time cost several microseconds, so the whole-second
part is remembered (timestamps made together share it) and the fraction appended.
"""

from __future__ import annotations

import datetime as dt
import functools
import time


@functools.lru_cache(maxsize=8)
def _whole_second(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()[:19]


def rfc3339_us(us: int) -> str:
    """``us`` microseconds since the epoch (UTC), as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    seconds, fraction = divmod(us, 1_000_000)
    return f"{_whole_second(seconds)}.{fraction:06d}Z"


def now_rfc3339() -> str:
    """The current time (the system clock), as :func:`rfc3339_us` writes it."""
    return rfc3339_us(time.time_ns() // 1000)
