"""The I/O layer against a scripted WebSocket server: what each close code makes the client do.

A tiny server in the test plays every close code on cue, and a gateway that goes silent;
a real operator disconnect (4003) is in ``test_against_the_gateway.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from herald_client import (
    AuthenticationError,
    Client,
    ClientState,
    DisconnectedByOperatorError,
    SubscriptionState,
)
from herald_client.tokens import TokenSource
from tests.clients.fakes import FakeGateway, accept_auth, fake_gateway, wait_until


def close_after_auth(code: int) -> Callable[[ServerConnection, int, FakeGateway], Awaitable[None]]:
    async def script(ws: ServerConnection, n: int, gateway: FakeGateway) -> None:
        await accept_auth(ws, gateway)
        if n == 0:
            await ws.close(code, "scripted")
        else:
            await ws.wait_closed()

    return script


def fast_client(url: str, token: TokenSource, **options: Any) -> Client:
    return Client(url, token=token, reconnect_min=0.05, reconnect_max=0.2, **options)


async def test_operator_disconnect_4003_stays_down() -> None:
    async with fake_gateway(close_after_auth(4003)) as gateway:
        calls = 0

        async def token() -> str:
            nonlocal calls
            calls += 1
            return f"token-{calls}"

        client = fast_client(gateway.url, token)
        await client.connect()
        await asyncio.wait_for(client.wait_closed(), 5)
        await asyncio.sleep(0.6)  # several backoff windows: no new attempt
        assert client.state is ClientState.CLOSED
        assert isinstance(client.error, DisconnectedByOperatorError)
        assert gateway.connections == 1 and calls == 1
        assert client.close_codes == [4003]
        with pytest.raises(DisconnectedByOperatorError):
            await client.publish("a.b", 1)
        await client.close()


@pytest.mark.parametrize("code", [1001, 1011, 4009])
async def test_transient_closes_reconnect_and_resubscribe(code: int) -> None:
    async def script(ws: ServerConnection, n: int, gateway: FakeGateway) -> None:
        await accept_auth(ws, gateway)
        async for raw in ws:
            frame = json.loads(raw)
            gateway.frames.append(frame)
            if frame["type"] == "subscribe":
                await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"]}))
                if n == 0:
                    await ws.send(json.dumps({"type": "message", "topic": "a.b", "data": 1, "offset": 5, "epoch": "e"}))
                    await ws.close(code, "scripted")

    async with fake_gateway(script) as gateway:
        client = fast_client(gateway.url, "static-token")
        await client.connect()
        sub = await client.subscribe("a.b")
        first = await asyncio.wait_for(anext(sub), 5)
        await wait_until(lambda: len([f for f in gateway.frames if f["type"] == "subscribe"]) == 2, 5, "resubscribe")
        resubscribe = [f for f in gateway.frames if f["type"] == "subscribe"][1]
        assert first.offset == 5
        assert resubscribe["since"] == {"offset": 5, "epoch": "e"}
        assert client.close_codes == [code] and gateway.connections == 2
        await wait_until(lambda: sub.state is SubscriptionState.SUBSCRIBED, 5, "subscribed again")
        await client.close()


async def test_refused_static_token_closes_with_a_clear_error() -> None:
    async with fake_gateway(close_after_auth(4001)) as gateway:
        client = fast_client(gateway.url, "static-token")
        await client.connect()
        await asyncio.wait_for(client.wait_closed(), 5)
        assert isinstance(client.error, AuthenticationError) and "4001" in str(client.error)
        await asyncio.sleep(0.4)
        assert gateway.connections == 1


async def test_refused_callback_token_reconnects_with_a_fresh_one() -> None:
    async with fake_gateway(close_after_auth(4001)) as gateway:
        tokens = iter(["first", "second", "third"])

        async def token() -> str:
            return next(tokens)

        client = fast_client(gateway.url, token)
        await client.connect()
        await wait_until(lambda: gateway.connections == 2 and client.state is ClientState.CONNECTED, 5, "reconnect")
        assert gateway.tokens == ["first", "second"]
        await client.close()


async def test_a_silent_gateway_is_noticed_by_the_ping_and_left() -> None:
    async def script(ws: ServerConnection, n: int, gateway: FakeGateway) -> None:
        await accept_auth(ws, gateway)
        # Reads nothing, so answers no ping, and never closes: only the client can end it.
        await ws.wait_closed()

    async with fake_gateway(script) as gateway:
        client = fast_client(gateway.url, "static-token", ping_interval=0.3, ping_timeout=0.3)
        await client.connect()
        started = asyncio.get_running_loop().time()
        await wait_until(lambda: gateway.connections == 2 and client.state is ClientState.CONNECTED, 5, "reconnect")
        elapsed = asyncio.get_running_loop().time() - started
        assert elapsed < 0.3 + 0.3 + 0.2 + 0.5  # ping interval + timeout + backoff + slack
        await client.close()


async def test_connect_gives_up_after_the_connect_timeout() -> None:
    from herald_client import ConnectTimeoutError
    from tests.support.procs import free_port

    client = fast_client(f"ws://127.0.0.1:{free_port()}/ws", "t", connect_timeout=0.5)
    with pytest.raises(ConnectTimeoutError):
        await client.connect()
    assert client.state is ClientState.CLOSED
    assert len(client.close_codes) >= 2  # it did retry meanwhile


async def test_connect_raises_when_the_first_auth_is_refused() -> None:
    async def refuse(ws: ServerConnection, n: int, gateway: FakeGateway) -> None:
        gateway.tokens.append(json.loads(await ws.recv())["token"])
        await ws.send(json.dumps({"type": "error", "code": "unauthorized", "message": "invalid token"}))
        await ws.close(4001, "authentication failed")

    async with fake_gateway(refuse) as gateway:
        client = fast_client(gateway.url, "bad-token")
        with pytest.raises(AuthenticationError, match="4001"):
            await client.connect()
        assert client.state is ClientState.CLOSED and gateway.connections == 1
