"""The tally of a REST-fed measurement: messages that reached every socket, losses, extras."""

from __future__ import annotations

from array import array
from typing import Any

from herald_bench.restfed import tally


def answer(hits: list[int], duplicates: int = 0, count: int = 0) -> dict[str, Any]:
    return {
        "hits": array("I", hits).tobytes(),
        "duplicates": duplicates,
        "strays": 0,
        "last_ns": 3_000_000_000,
        "samples": array("q", [1000] * count).tobytes(),
        "open": 1,
    }


def test_a_message_counts_when_every_socket_of_every_process_has_it() -> None:
    # ids 0..3, 2 sockets (one per process); id 3 was not accepted (its POST failed) yet arrived once
    collected = [answer([1, 1, 0, 1], duplicates=2, count=3), answer([1, 0, 1, 0], count=2)]
    out = tally(collected, bytearray([1, 1, 1, 0]), sockets=2, start_ns=1_000_000_000, window=1.0)
    assert out["messages_to_every_socket"] == 1
    assert out["delivered_pct"] == 33.33
    assert out["distinct_deliveries"] == 5
    assert out["lost_deliveries"] == 2
    assert out["unacknowledged_deliveries"] == 1
    assert out["duplicates"] == 2
    assert out["deliveries_per_s"] == 2.5  # over first publish → last read (2 s), longer than the window
    assert out["latency"]["samples"] == 5


def test_nothing_accepted_has_no_percentage() -> None:
    out = tally([answer([0, 0])], bytearray(2), sockets=1, start_ns=0, window=1.0)
    assert out["delivered_pct"] is None and out["deliveries_per_s"] == 0.0
