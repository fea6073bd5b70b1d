"""Who may read what: every pattern × every user, checked on the frames actually received.

Users A and B, an admin, and a channel whose only member is A. Each (user, pattern) pair gets
its own socket; then real traffic flows through the api. Allowed pairs must receive exactly
the messages whose topics their pattern matches; refused pairs get `forbidden` and nothing.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack

import pytest

from herald_common.topics import matches
from tests.support.stack import Client, Stack, client, token

pytestmark = pytest.mark.integration


def test_authorization_matrix(stack: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    a, b, admin = f"a{run}", f"b{run}", f"root{run}"
    resp = stack.post("/api/channels", {"name": f"team-{run}"}, token(a))
    assert resp.status_code == 201, resp.text
    channel = resp.json()["id"]

    patterns = [
        f"messages.user.{a}",
        f"messages.user.{b}",
        f"messages.channel.{channel}",
        "messages",
        "messages.user.*",
        "messages.channel.*",
        "messages.**",
        "*.user.*",
        "**",
    ]
    allowed = {
        a: {f"messages.user.{a}", f"messages.channel.{channel}"},
        b: {f"messages.user.{b}"},
        admin: set(patterns),
    }
    roles = {a: (), b: (), admin: ("admin",)}

    with ExitStack() as stack_of_clients:
        sockets: dict[tuple[str, str], Client] = {}
        for user in (a, b, admin):
            for pattern in patterns:
                gw = stack.gateways[len(sockets) % len(stack.gateways)]
                c = stack_of_clients.enter_context(client(gw.url, user, *roles[user]))
                reply = c.subscribe(pattern, id=1)
                if pattern in allowed[user]:
                    assert reply == {"type": "subscribed", "topic": pattern, "id": 1}, (user, pattern, reply)
                else:
                    assert reply["type"] == "error", (user, pattern, reply)
                    assert reply["code"] == "forbidden", (user, pattern, reply)
                sockets[user, pattern] = c

        sent: list[tuple[str, list[str]]] = []  # (message id, topics it was published on)
        traffic = [
            (a, {"content": "a to b", "recipientId": b}, [f"messages.user.{a}", f"messages.user.{b}"]),
            (b, {"content": "b to a", "recipientId": a}, [f"messages.user.{b}", f"messages.user.{a}"]),
            (a, {"content": "in channel", "channelId": channel}, [f"messages.user.{a}", f"messages.channel.{channel}"]),
        ]
        for sender, body, topics in traffic:
            r = stack.post("/api/messages", body, token(sender))
            assert r.status_code == 201, r.text
            sent.append((r.json()["id"], ["messages", *topics]))

        # B may not post into A's channel, and is not told that it exists.
        r = stack.post("/api/messages", {"content": "intrude", "channelId": channel}, token(b))
        assert r.status_code == 404

        for (user, pattern), c in sockets.items():
            expected = sorted((mid, t) for mid, topics in sent for t in topics if matches(pattern, t))
            if pattern not in allowed[user]:
                expected = []
            got = sorted((m["data"]["id"], m["topic"]) for m in c.messages(len(expected)))
            assert got == expected, (user, pattern)
            # Nothing more is queued for this socket: the next frame is the pong.
            c.send({"type": "ping"})
            assert c.recv()["type"] == "pong", (user, pattern)
