"""Encode once, fan out: one frame's bytes for every recipient, bounded per socket."""

from __future__ import annotations

import asyncio
import json

from herald_common.config import load_settings
from herald_common.topics import live_subject
from herald_gateway.connection import ClientConnection
from herald_gateway.fanout import Outbox, fan_out, text_frame
from herald_gateway.recovery import Recovery
from herald_gateway.server import Gateway
from tests.gateway.fakes import FakeWebSocket, decoded, fake_connection, manual_outbox
from tests.gateway.helpers import SECRET, T0, authed, text

PAYLOAD = b'{"type":"message","topic":"news.a","data":1,"offset":7,"epoch":"e"}'


OUTBOX = manual_outbox()


def subscribed(
    topic: str, sub: str = "alice", max_pending_bytes: int = 1 << 20, outbox: Outbox = OUTBOX
) -> tuple[ClientConnection, FakeWebSocket]:
    session = authed(sub, topics=["news.**"])
    session.on_text(text({"type": "subscribe", "topic": topic}), T0)
    return fake_connection(session, max_pending_bytes, outbox)


def test_every_transport_gets_the_same_bytes_object() -> None:
    outbox = manual_outbox()
    pairs = [subscribed("news.*", f"u{i}", outbox=outbox) for i in range(5)]
    delivered, slow = fan_out([c for c, _ in pairs], "news.*", "news.a", 7, PAYLOAD)
    assert (delivered, slow) == (5, [])
    outbox.flush()
    first = pairs[0][1].transport.written[0]
    assert first == text_frame(PAYLOAD)
    assert all(len(ws.transport.written) == 1 and ws.transport.written[0] is first for _, ws in pairs)


def test_a_recipient_over_its_bound_gets_nothing_and_the_others_are_unaffected() -> None:
    fast, fast_ws = subscribed("news.*", "u1")
    slow_conn, slow_ws = subscribed("news.*", "u2", max_pending_bytes=len(text_frame(PAYLOAD)) + 10)
    slow_ws.transport.buffered = 11  # the socket has not taken earlier bytes yet
    delivered, slow = fan_out([fast, slow_conn], "news.*", "news.a", 7, PAYLOAD)
    assert delivered == 1 and slow == [slow_conn]
    OUTBOX.flush()
    assert slow_ws.transport.written == [] and len(fast_ws.transport.written) == 1


def test_the_bound_counts_what_the_socket_still_holds() -> None:
    frame = text_frame(PAYLOAD)
    conn, ws = subscribed("news.*", max_pending_bytes=3 * len(frame))
    results = [fan_out([conn], "news.*", "news.a", i, PAYLOAD) for i in range(2)]
    OUTBOX.flush()  # the bound covers both the transport's buffer and what waits
    results += [fan_out([conn], "news.*", "news.a", i, PAYLOAD) for i in range(2, 4)]
    assert [r[0] for r in results] == [1, 1, 1, 0]
    OUTBOX.flush()
    assert ws.transport.get_write_buffer_size() == 3 * len(frame)
    assert ws.transport.written == [frame + frame, frame]
    ws.transport.buffered = 0  # the client caught up
    assert fan_out([conn], "news.*", "news.a", 5, PAYLOAD)[0] == 1


def test_recipients_not_wanting_the_topic_are_skipped() -> None:
    conn, ws = subscribed("news.b")
    assert fan_out([conn], "news.*", "news.a", 7, PAYLOAD) == (0, [])  # not held
    conn.session.on_text(text({"type": "subscribe", "topic": "news.*"}), T0)
    conn.session.on_text(text({"type": "subscribe", "topic": "news.a"}), T0)
    assert fan_out([conn], "news.a", "news.a", 7, PAYLOAD) == (0, [])  # news.* delivers it
    OUTBOX.flush()
    assert ws.transport.written == []
    assert fan_out([conn], "news.*", "news.a", 7, PAYLOAD) == (1, [])


def test_a_recovering_recipient_parks_the_payload() -> None:
    conn, ws = subscribed("news.*")
    conn.recovering["news.*"] = Recovery(limit=1)
    assert fan_out([conn], "news.*", "news.a", 7, PAYLOAD) == (0, [])
    assert ws.transport.written == []
    assert conn.recovering["news.*"].finish(0) == [PAYLOAD]


def test_a_recovering_recipient_with_no_parking_space_left_is_slow() -> None:
    conn, ws = subscribed("news.*")
    conn.recovering["news.*"] = Recovery(limit=1)
    assert fan_out([conn], "news.*", "news.a", 7, PAYLOAD) == (0, [])
    assert fan_out([conn], "news.*", "news.a", 8, PAYLOAD) == (0, [conn])
    assert ws.transport.written == []


async def test_gateway_closes_a_slow_consumer_4009_once_and_counts_it() -> None:
    gateway = Gateway(load_settings({}, jwt_secret=SECRET))
    outbox = Outbox()  # flushed by the running loop
    fast, fast_ws = subscribed("news.*", "u1", outbox=outbox)
    slow_conn, slow_ws = subscribed("news.*", "u2", max_pending_bytes=200, outbox=outbox)
    for conn in (fast, slow_conn):
        gateway.interest.add("news.*", conn)
    slow_ws.transport.buffered = 200
    body = b'{"data":{"n":1}}'
    for offset in (1, 2):
        headers = {"Nats-Sequence": str(offset)}
        assert gateway.delivery.fan_out("news.*", live_subject("news.a"), headers, body, "e") == 1
    await asyncio.gather(*gateway._tasks)
    await slow_conn.closed()
    assert fast_ws.transport.written and not slow_ws.transport.written
    assert slow_ws.closed_with == [(4009, "slow consumer")]
    assert "news.*" not in slow_conn.session.subscriptions
    assert gateway.metrics.slow_consumers._value.get() == 1
    assert len(fast_ws.transport.written) == 1  # both messages in one write
    assert [json.loads(f)["offset"] for f in decoded(fast_ws.transport.written)] == [1, 2]
