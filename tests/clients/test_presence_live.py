"""Presence against a real gateway: join and leave events, the members a latecomer is
told, and the presence query."""

from __future__ import annotations

import pytest

from herald_client import Client, PresenceEvent, PresenceKind
from tests.clients.fakes import wait_until
from tests.clients.support import start_gateway
from tests.support.procs import free_port
from tests.support.stack import Stack, token

pytestmark = pytest.mark.integration


async def test_join_leave_and_the_presence_query(stack: Stack) -> None:
    port, metrics = free_port(), free_port()
    gateway = start_gateway(stack, port, metrics)
    url = f"ws://127.0.0.1:{port}/ws"
    alice = Client(url, token=token("alice-presence", topics=["lobby.**"]))
    bob = Client(url, token=token("bob-presence", topics=["lobby.**"]))
    carol = Client(url, token=token("carol-presence", topics=["lobby.**"]))
    try:
        await alice.connect()
        empty = await alice.presence("lobby.main")
        assert (empty.count, empty.users) == (0, [])
        events: list[PresenceEvent] = []
        sub = await alice.subscribe("lobby.main", presence=True, on_presence=events.append)
        await bob.connect()
        bobs = await bob.subscribe("lobby.main", presence=True)
        await wait_until(lambda: "bob-presence" in sub.members, 5, "bob's join")
        snapshot = await alice.presence("lobby.main")
        assert snapshot.users == ["alice-presence", "bob-presence"] and snapshot.count == 2
        # A latecomer learns who is there already (the client asks after subscribing).
        await carol.connect()
        late = await carol.subscribe("lobby.main", presence=True)
        await wait_until(lambda: late.members >= {"alice-presence", "bob-presence"}, 5, "carol's roster")
        await bobs.unsubscribe()
        # A leave is held back for the gateway's presence grace (5 s by default).
        await wait_until(lambda: "bob-presence" not in sub.members, 15, "bob's leave")
        kinds = [(e.kind, e.user_id) for e in events if e.user_id == "bob-presence"]
        assert kinds[-2:] == [(PresenceKind.JOIN, "bob-presence"), (PresenceKind.LEAVE, "bob-presence")]
    finally:
        await alice.close()
        await bob.close()
        await carol.close()
        gateway.stop()
