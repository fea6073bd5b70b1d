"""One connection's writes: whole frames, in order, bounded by what the socket still holds."""

from __future__ import annotations

import json

from websockets.protocol import State

from herald_common.errors import CloseCode
from herald_gateway.actions import Close
from herald_gateway.connection import ClientConnection
from herald_gateway.fanout import text_frame
from tests.gateway.fakes import decoded, fake_connection, manual_outbox
from tests.gateway.helpers import new_session


def test_deliveries_over_the_byte_bound_are_refused() -> None:
    conn, ws = fake_connection(new_session(), max_pending_bytes=14)
    assert conn.push(b"12345")  # 7 bytes with its header
    assert conn.push(b"12345")
    assert not conn.push(b"1")
    assert conn.pending_bytes == 14
    conn.flush()
    assert conn.pending_bytes == 14  # now in the transport's buffer
    assert not conn.push(b"1")
    assert ws.transport.written == [text_frame(b"12345") * 2]


def test_room_frees_up_as_the_socket_takes_bytes() -> None:
    conn, ws = fake_connection(new_session(), max_pending_bytes=10)
    assert conn.push(b"12345678")
    assert not conn.push(b"12345678")
    conn.flush()
    ws.transport.buffered = 0
    assert conn.push(b"12345678")


def test_frames_of_one_iteration_go_out_in_order_in_one_write() -> None:
    outbox = manual_outbox()
    conn, ws = fake_connection(new_session(), outbox=outbox)
    conn.push_control(b"reply")
    assert conn.push(b"m1") and conn.push(b"m2")
    assert ws.transport.written == []
    outbox.flush()
    assert len(ws.transport.written) == 1
    assert decoded(ws.transport.written) == [b"reply", b"m1", b"m2"]
    outbox.flush()
    assert len(ws.transport.written) == 1


def over_bound(conn: ClientConnection) -> bool:
    # A call, so that mypy does not narrow the property across steps.
    return conn.over_bound


async def test_replies_count_against_the_bound_like_deliveries() -> None:
    conn, ws = fake_connection(new_session(), max_pending_bytes=8)
    assert conn.push_control(b"12345")
    assert conn.pending_bytes == 7
    assert not over_bound(conn)
    assert not conn.push_control(b"12")  # would make 11 bytes: refused, nothing queued
    assert not conn.push(b"x")
    assert conn.pending_bytes == 7
    ws.transport.buffered = 5  # e.g. pongs websockets wrote by itself
    assert over_bound(conn)
    assert conn.push_control(Close(CloseCode.SLOW_CONSUMER, "slow consumer"))
    await conn.closed()
    assert ws.closed_with == [(4009, "slow consumer")]


async def test_a_close_writes_what_waits_first_then_nothing_more() -> None:
    conn, ws = fake_connection(new_session())
    conn.push_control(b'{"type":"pong"}')
    conn.push_control(Close(CloseCode.SLOW_CONSUMER, "slow consumer"))
    assert conn.push(b"late")  # dropped, not slow
    conn.push_control(b"late")
    conn.push_control(Close(CloseCode.SLOW_CONSUMER, "again"))
    await conn.closed()
    conn.flush()
    assert [json.loads(f) for f in decoded(ws.transport.written)] == [{"type": "pong"}]
    assert ws.closed_with == [(4009, "slow consumer")]


def test_a_slow_consumers_waiting_frames_are_dropped() -> None:
    conn, ws = fake_connection(new_session())
    assert conn.push(b"x")
    conn.drop_pending()
    assert conn.pending_bytes == 0
    conn.flush()
    assert ws.transport.written == []


def test_nothing_is_written_once_websockets_left_open() -> None:
    conn, ws = fake_connection(new_session())
    assert conn.push(b"x")
    conn.push_control(b"y")
    ws.protocol.state = State.CLOSING  # e.g. the client sent a close frame meanwhile
    conn.flush()
    assert ws.transport.written == []


async def test_a_close_stuck_behind_a_full_buffer_aborts_the_socket() -> None:
    conn, ws = fake_connection(new_session())
    ws.hang_on_close = True
    conn.push_control(Close(CloseCode.SLOW_CONSUMER, "slow consumer"))
    await conn.closed()
    assert ws.transport.aborted.is_set()
    assert conn.close_code == 4009  # what the gateway counts, though the client never saw it


def test_frame_headers_for_each_length_form() -> None:
    assert text_frame(b"") == b"\x81\x00"
    assert text_frame(b"a" * 125)[:2] == b"\x81\x7d"
    assert text_frame(b"a" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert text_frame(b"a" * 65535)[:4] == b"\x81\x7e\xff\xff"
    assert text_frame(b"a" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")


def test_cut_aborts_at_once_and_keeps_the_first_close_code() -> None:
    conn, ws = fake_connection(new_session())
    conn.push(b"waiting")
    conn.close_code = 4008
    conn.cut(4009)
    assert ws.transport.aborted.is_set()
    assert conn.closing and conn.close_code == 4008
    assert conn.pending_bytes == 0
