"""Summaries of what the load processes collected."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from typing import Any


def merge_samples(chunks: Iterable[bytes]) -> array[int]:
    merged: array[int] = array("q")
    for chunk in chunks:
        merged.frombytes(chunk)
    return merged


def percentile(ordered: list[int], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in 0..100)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def latency_ms(samples_us: Iterable[int]) -> dict[str, Any]:
    """p50, p99, max (milliseconds) and the sample count."""
    ordered = sorted(samples_us)
    if not ordered:
        return {"samples": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "samples": len(ordered),
        "p50_ms": round(percentile(ordered, 50) / 1000, 3),
        "p99_ms": round(percentile(ordered, 99) / 1000, 3),
        "max_ms": round(ordered[-1] / 1000, 3),
    }
