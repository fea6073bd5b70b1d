"""A token that expires during a session is refreshed on the live socket: no disconnect,
nothing missed. The gateway's refresh grace is cut to 0.5 s, so a late refresh would
end the socket with 4001 and show up as a reconnect."""

from __future__ import annotations

import asyncio

import pytest

from herald_client import Client, ClientState
from herald_common.tokens import issue_token
from tests.clients.support import Collector, account, publish_load, start_gateway, wait_for
from tests.support.procs import free_port
from tests.support.stack import SECRET, Stack

pytestmark = pytest.mark.integration


async def test_a_short_lived_token_is_refreshed_without_a_disconnect(stack: Stack) -> None:
    port, metrics = free_port(), free_port()
    gateway = start_gateway(stack, port, metrics, HERALD_AUTH_REFRESH_GRACE="0.5")
    issued: list[str] = []
    notices: list[tuple[str, str]] = []

    async def fresh_token() -> str:
        issued.append(issue_token(SECRET, "sdk-refresher", ttl=3, topics=["refresh.**"]))
        return issued[-1]

    client = Client(
        f"ws://127.0.0.1:{port}/ws", token=fresh_token, on_notice=lambda code, text: notices.append((code, text))
    )
    try:
        await client.connect()
        collector = Collector(await client.subscribe("refresh.x")).start()
        expected = await publish_load(stack, ["refresh.x"], rate=50, seconds=8)
        await wait_for([collector], [expected], timeout=10)
        assert account(collector.got, expected) == {"lost": 0, "duplicated": 0, "reordered": 0, "foreign": 0}
        assert len(issued) >= 3  # the first token and at least two refreshes over 8 s of 3 s tokens
        assert client.connections == 1 and client.close_codes == []  # the same socket all along
        assert client.state is ClientState.CONNECTED
        assert notices == []  # no "token expired" from the gateway
    except BaseException:
        print(gateway.logs()[-3000:])
        raise
    finally:
        await client.close()
        gateway.stop()


async def test_a_fixed_token_that_expires_closes_the_client_with_a_clear_error(stack: Stack) -> None:
    port, metrics = free_port(), free_port()
    gateway = start_gateway(stack, port, metrics, HERALD_AUTH_REFRESH_GRACE="0.5")
    client = Client(f"ws://127.0.0.1:{port}/ws", token=issue_token(SECRET, "sdk-fixed", ttl=2), reconnect_min=0.1)
    try:
        await client.connect()
        await asyncio.wait_for(client.wait_closed(), 10)
        assert client.close_codes == [4001]
        assert client.state is ClientState.CLOSED and "4001" in str(client.error)
    finally:
        await client.close()
        gateway.stop()
