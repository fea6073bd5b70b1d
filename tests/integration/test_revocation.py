"""Losing access ends live subscriptions on every gateway, without the client asking."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.support.stack import Client, Stack, client, token

pytestmark = pytest.mark.integration

# The api emits the revocation event at once; this only bounds a stuck delivery.
UNSUBSCRIBED_WITHIN = 10.0


def call(stack: Stack, method: str, path: str, tok: str, body: object | None = None) -> httpx.Response:
    return httpx.request(
        method, stack.api_url + path, json=body, headers={"Authorization": f"Bearer {tok}"}, timeout=10
    )


def next_message(c: Client) -> dict[str, Any]:
    frame = c.recv(timeout=10)
    assert frame["type"] == "message", frame
    return frame


def test_removed_member_and_deleted_channel_lose_their_subscriptions(stack: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    owner, member = f"own{run}", f"mem{run}"
    created = call(stack, "POST", "/api/channels", token(owner), {"name": f"c{run}"})
    assert created.status_code == 201, created.text
    channel = created.json()["id"]
    topic = f"messages.channel.{channel}"
    assert call(stack, "PUT", f"/api/channels/{channel}/members/{member}", token(owner)).status_code == 204
    gw0, gw1 = stack.gateways[0].url, stack.gateways[1].url

    # The member and the owner each hold a socket on both gateways, subscribed to the
    # channel and (as a fence) to their own user topic.
    with client(gw0, member) as m0, client(gw1, member) as m1, client(gw0, owner) as o0, client(gw1, owner) as o1:
        for c, user in ((m0, member), (m1, member), (o0, owner), (o1, owner)):
            assert c.subscribe(topic) == {"type": "subscribed", "topic": topic}
            own = f"messages.user.{user}"
            assert c.subscribe(own) == {"type": "subscribed", "topic": own}
        sent = stack.post("/api/messages", {"content": "before", "channelId": channel}, token(owner))
        assert sent.status_code == 201
        for c in (m0, m1):
            assert next_message(c)["data"] == sent.json()
        for c in (o0, o1):  # on the channel topic and, as its sender, on the owner's own topic
            assert {next_message(c)["topic"] for _ in range(2)} == {topic, f"messages.user.{owner}"}

        removed_at = time.monotonic()
        assert call(stack, "DELETE", f"/api/channels/{channel}/members/{member}", token(owner)).status_code == 204
        for c in (m0, m1):
            assert c.recv(timeout=UNSUBSCRIBED_WITHIN) == {"type": "unsubscribed", "topic": topic}
        print(f"member unsubscribed on both gateways {1000 * (time.monotonic() - removed_at):.0f} ms after removal")

        after = stack.post("/api/messages", {"content": "after", "channelId": channel}, token(owner))
        assert after.status_code == 201
        for c in (o0, o1):
            assert {next_message(c)["data"]["content"] for _ in range(2)} == {"after"}
        # A fence: a direct message to the member, sent after "after". Had "after" reached a
        # member socket, it would arrive there first.
        direct = stack.post("/api/messages", {"content": "fence", "recipientId": member}, token(owner))
        assert direct.status_code == 201
        for c in (m0, m1):
            got = next_message(c)
            assert (got["topic"], got["data"]) == (f"messages.user.{member}", direct.json()), got
            again = c.subscribe(topic)
            assert (again["type"], again["code"]) == ("error", "forbidden"), again
        for c in (o0, o1):  # the owner's copy of the direct message, on the owner's own topic
            assert next_message(c)["data"] == direct.json()

        deleted_at = time.monotonic()
        assert call(stack, "DELETE", f"/api/channels/{channel}", token(owner)).status_code == 204
        for c in (o0, o1):
            assert c.recv(timeout=UNSUBSCRIBED_WITHIN) == {"type": "unsubscribed", "topic": topic}
        print(f"owner unsubscribed on both gateways {1000 * (time.monotonic() - deleted_at):.0f} ms after deletion")
