"""Losing access ends live subscriptions within a second, on every gateway."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.support.stack import Stack, client, token

pytestmark = pytest.mark.integration


def call(stack: Stack, method: str, path: str, tok: str, body: object | None = None) -> httpx.Response:
    return httpx.request(
        method, stack.api_url + path, json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=10
    )


def test_removed_member_and_deleted_channel_lose_their_subscriptions(stack: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    owner, member = f"own{run}", f"mem{run}"
    created = call(stack, "POST", "/api/channels", token(owner), {"name": f"c{run}"})
    assert created.status_code == 201, created.text
    channel = created.json()["id"]
    topic = f"messages.channel.{channel}"
    assert call(stack, "PUT", f"/api/channels/{channel}/members/{member}", token(owner)).status_code in (200, 201, 204)

    with client(stack.gateways[0].url, member) as m, client(stack.gateways[1].url, owner) as o:
        assert m.subscribe(topic) == {"type": "subscribed", "topic": topic}
        assert o.subscribe(topic) == {"type": "subscribed", "topic": topic}
        sent = stack.post("/api/messages", {"content": "before", "channelId": channel}, token(owner))
        assert sent.status_code == 201
        assert m.messages(1)[0]["data"]["content"] == "before"
        assert o.messages(1)[0]["data"]["content"] == "before"

        removed_at = time.monotonic()
        assert call(stack, "DELETE", f"/api/channels/{channel}/members/{member}", token(owner)).status_code == 204
        assert m.recv(timeout=1.0) == {"type": "unsubscribed", "topic": topic}
        print(f"member unsubscribed {1000 * (time.monotonic() - removed_at):.0f} ms after removal")

        after = stack.post("/api/messages", {"content": "after", "channelId": channel}, token(owner))
        assert after.status_code == 201
        assert o.messages(1)[0]["data"]["content"] == "after"
        m.send({"type": "ping"})
        assert m.recv()["type"] == "pong", "the removed member still received channel traffic"
        again = m.subscribe(topic)
        assert again["type"] == "error"
        assert again["code"] == "forbidden"

        deleted_at = time.monotonic()
        assert call(stack, "DELETE", f"/api/channels/{channel}", token(owner)).status_code == 204
        assert o.recv(timeout=1.0) == {"type": "unsubscribed", "topic": topic}
        print(f"owner unsubscribed {1000 * (time.monotonic() - deleted_at):.0f} ms after deletion")
