"""The message path end to end: REST → api → NATS → bridge → NATS → gateways → sockets."""

from __future__ import annotations

import time
import uuid

import pytest
import websocket

from tests.support.stack import Stack, client, token

pytestmark = pytest.mark.integration


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def fence(stack: Stack, user: str) -> str:
    """Publish to ``fence.{user}`` (which that user's token grants) and return the topic.

    Events reach every gateway in stream order and a socket's frames keep that order, so a
    message stored before the fence that would reach the socket arrives before the fence:
    receiving the fence first proves that nothing else was coming, without waiting.
    """
    topic = f"fence.{user}"
    resp = stack.post("/api/publish", {"topic": topic, "data": {"fence": user}}, token("fencer", "publisher"))
    assert resp.status_code == 202, resp.text
    return topic


def test_post_reaches_recipient_and_sender_but_no_one_else(stack: Stack) -> None:
    alice, bob, carol = uid("alice"), uid("bob"), uid("carol")
    gw0, gw1 = stack.gateways[0].url, stack.gateways[1].url
    with client(gw0, alice) as a, client(gw1, bob) as b, client(gw0, carol) as c:
        for cl, user in ((a, alice), (b, bob), (c, carol)):
            assert cl.subscribe(f"messages.user.{user}") == {"type": "subscribed", "topic": f"messages.user.{user}"}
        started = time.monotonic()
        resp = stack.post("/api/messages", {"content": "hello bob", "recipientId": bob}, token(alice))
        assert resp.status_code == 201, resp.text
        msg = resp.json()
        assert msg["senderId"] == alice and msg["recipientId"] == bob and msg["content"] == "hello bob"
        assert set(msg) >= {"id", "senderId", "recipientId", "channelId", "content", "createdAt"}

        got_b = b.messages(1)[0]
        got_a = a.messages(1)[0]
        elapsed = time.monotonic() - started
        for got, user in ((got_a, alice), (got_b, bob)):
            assert got["topic"] == f"messages.user.{user}"
            assert got["event"] == "message.sent"
            assert got["data"] == msg
            assert isinstance(got["offset"], int) and got["offset"] > 0
            assert isinstance(got["epoch"], str) and got["epoch"]
        print(f"POST → both sockets: {elapsed * 1000:.1f} ms")

        # A fence: a message carol may read. If the first one had leaked to her, she would
        # receive it before this one (per-connection order is preserved).
        fence = stack.post("/api/messages", {"content": "for carol", "recipientId": carol}, token(bob))
        assert fence.status_code == 201
        first = c.messages(1)[0]
        assert first["data"]["id"] == fence.json()["id"]


def test_other_users_topics_are_forbidden(stack: Stack) -> None:
    mallory, alice = uid("mallory"), uid("alice")
    with client(stack.gateways[0].url, mallory, topics=[f"fence.{mallory}"]) as m:
        for pattern in (f"messages.user.{alice}", "messages.user.*", "messages.**", "messages", "**", "*.user.*"):
            reply = m.subscribe(pattern, id=pattern)
            assert reply["type"] == "error" and reply["code"] == "forbidden", (pattern, reply)
            assert reply["id"] == pattern
        assert m.subscribe(f"fence.{mallory}")["type"] == "subscribed"
        resp = stack.post("/api/messages", {"content": "secret", "recipientId": alice}, token(uid("x")))
        assert resp.status_code == 201
        # Had the secret leaked to mallory, it would arrive before the fence published after it.
        topic = fence(stack, mallory)
        first = m.recv()
        assert (first["type"], first["topic"], first["data"]) == ("message", topic, {"fence": mallory}), first


def test_admin_may_subscribe_to_everything(stack: Stack) -> None:
    with client(stack.gateways[1].url, uid("root"), "admin") as adm:
        assert adm.subscribe("messages")["type"] == "subscribed"
        sender = uid("s")
        resp = stack.post("/api/messages", {"content": "audit me", "recipientId": uid("r")}, token(sender))
        assert resp.status_code == 201
        # `messages` carries every message, so earlier tests' traffic may still be arriving.
        wanted = resp.json()["id"]
        for _ in range(50):
            got = adm.messages(1)[0]
            assert got["topic"] == "messages"
            if got["data"]["id"] == wanted:
                break
        else:
            raise AssertionError("the admin never received the message")


def test_unsubscribe_stops_delivery(stack: Stack) -> None:
    user = uid("u")
    with client(stack.gateways[0].url, user, topics=[f"fence.{user}"]) as c:
        topic = f"messages.user.{user}"
        assert c.subscribe(topic)["type"] == "subscribed"
        assert c.subscribe(f"fence.{user}")["type"] == "subscribed"
        assert stack.post("/api/messages", {"content": "one"}, token(user)).status_code == 201
        assert c.messages(1)[0]["data"]["content"] == "one"
        c.send({"type": "unsubscribe", "topic": topic, "id": 9})
        assert c.recv() == {"type": "unsubscribed", "topic": topic, "id": 9}
        assert stack.post("/api/messages", {"content": "two"}, token(user)).status_code == 201
        # "two" would arrive before the fence published after it.
        fenced = fence(stack, user)
        first = c.recv()
        assert (first["type"], first["topic"]) == ("message", fenced), first


def test_publish_reaches_double_wildcard_subscriber(stack: Stack) -> None:
    root = uid("news")
    with (
        client(stack.gateways[0].url, uid("reader"), topics=[f"{root}.**"]) as r0,
        client(stack.gateways[1].url, uid("reader"), topics=[f"{root}.**"]) as r1,
    ):
        for r in (r0, r1):
            assert r.subscribe(f"{root}.**")["type"] == "subscribed"
        resp = stack.post(
            "/api/publish", {"topic": f"{root}.sport.live", "data": {"score": [1, 0]}}, token("p", "publisher")
        )
        assert resp.status_code == 202, resp.text
        for r in (r0, r1):
            got = r.messages(1)[0]
            assert got["topic"] == f"{root}.sport.live" and got["data"] == {"score": [1, 0]}
            assert "event" not in got


def test_publish_needs_the_publisher_role(stack: Stack) -> None:
    resp = stack.post("/api/publish", {"topic": "x.y", "data": 1}, token(uid("plain")))
    assert resp.status_code == 403
    assert resp.json()["code"] == "forbidden"


def test_auth_timeout_closes_with_4001(stack: Stack) -> None:
    # The stack's gateways use the default 5 s auth timeout.
    ws = websocket.create_connection(stack.gateways[0].url, timeout=20)
    started = time.monotonic()
    ws.settimeout(20)
    opcode, data = ws.recv_data(control_frame=True)
    while opcode != websocket.ABNF.OPCODE_CLOSE:
        opcode, data = ws.recv_data(control_frame=True)
    assert int.from_bytes(data[:2], "big") == 4001
    assert 4 <= time.monotonic() - started < 15
    ws.close()


def test_frame_over_the_limit_closes_with_1009(stack: Stack) -> None:
    ws = websocket.create_connection(stack.gateways[1].url, timeout=10)
    ws.send('{"type":"auth","token":"' + "x" * (2 * 1024 * 1024) + '"}')
    opcode, data = ws.recv_data(control_frame=True)
    while opcode != websocket.ABNF.OPCODE_CLOSE:
        opcode, data = ws.recv_data(control_frame=True)
    assert int.from_bytes(data[:2], "big") == 1009
    ws.close()


def test_bad_frames_keep_the_connection(stack: Stack) -> None:
    with client(stack.gateways[0].url, uid("fuzzy")) as c:
        for raw in ("nope", "[]", '{"type":"what"}', '{"type":"subscribe"}', '{"type":"subscribe","topic":7,"id":3}'):
            c.ws.send(raw)
            reply = c.recv()
            assert reply["type"] == "error" and reply["code"] == "bad_request", (raw, reply)
        reply = c.subscribe("a..b")
        assert reply["type"] == "error" and reply["code"] == "invalid_topic"
        c.send({"type": "ping"})
        assert c.recv_type("pong")
