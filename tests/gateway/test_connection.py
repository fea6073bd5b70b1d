"""The per-socket outgoing queue's bounds (frames and bytes)."""

from __future__ import annotations

from typing import Any, cast

from herald_common.errors import CloseCode
from herald_gateway.actions import Close
from herald_gateway.connection import ClientConnection
from tests.gateway.helpers import new_session


def queue(max_frames: int, max_bytes: int) -> ClientConnection:
    return ClientConnection(cast(Any, None), new_session(), max_frames, max_bytes)


def test_queue_refuses_deliveries_over_the_byte_bound() -> None:
    conn = queue(max_frames=100, max_bytes=10)
    assert conn.push(b"12345")
    assert conn.push(b"12345")
    assert not conn.push(b"1")
    assert conn.pending_bytes == 10


def test_queue_refuses_deliveries_over_the_frame_bound() -> None:
    conn = queue(max_frames=2, max_bytes=1000)
    assert conn.push(b"a") and conn.push(b"b")
    assert not conn.push(b"c")


def test_replies_are_never_refused_but_count() -> None:
    conn = queue(max_frames=1, max_bytes=4)
    conn.push_control(b"12345")
    conn.push_control(Close(CloseCode.SLOW_CONSUMER, "slow consumer"))
    assert conn.pending_bytes == 5
    assert not conn.push(b"x")
    conn.drop_pending()
    assert conn.pending_bytes == 0
    assert conn.push(b"x")
