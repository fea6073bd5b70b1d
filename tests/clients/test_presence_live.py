"""Presence against a real gateway, once the gateway answers it: the presence frames are
in the contract, the gateway side is added separately. Until a gateway answers the
``presence`` query, this test is skipped with that reason (the SDK's presence handling is
covered by the core's and the I/O layer's tests)."""

from __future__ import annotations

import pytest

from herald_client import Client, PresenceEvent, PresenceKind, ServerError
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
        try:
            await alice.presence("lobby.main")
        except ServerError as exc:
            if exc.code == "bad_request":
                pytest.skip(f"this gateway does not answer presence yet ({exc.message})")
            raise
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
