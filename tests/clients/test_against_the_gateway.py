"""The SDK's everyday calls against a real gateway, api and bridge."""

from __future__ import annotations

import asyncio

import pytest

from herald_client import Client, ClientState, DisconnectedByOperatorError, ServerError, SubscriptionState
from tests.clients.support import start_gateway
from tests.support.procs import free_port
from tests.support.stack import Stack, token

pytestmark = pytest.mark.integration


async def test_publish_subscribe_events_and_refusals(stack: Stack) -> None:
    port, metrics = free_port(), free_port()
    gateway = start_gateway(stack, port, metrics)
    url = f"ws://127.0.0.1:{port}/ws"
    alice = Client(url, token=token("alice-sdk", topics=["chat.**"], publish=["chat.**"]))
    try:
        await alice.connect()
        assert alice.user_id == "alice-sdk"
        own = await alice.subscribe("messages.user.alice-sdk")
        chat = await alice.subscribe("chat.*")
        result = await alice.publish("chat.room", {"text": "hi"})
        message = await asyncio.wait_for(anext(chat), 5)
        assert (message.topic, message.data, message.offset) == ("chat.room", {"text": "hi"}, result.offset)
        assert message.publisher == "alice-sdk" and message.event is None
        # An api event: a direct message from bob reaches alice's own topic with `event`.
        resp = stack.post("/api/messages", {"content": "hello", "recipientId": "alice-sdk"}, token("bob-sdk"))
        assert resp.status_code == 201
        event = await asyncio.wait_for(anext(own), 5)
        assert event.event == "message.sent" and event.data["content"] == "hello" and event.publisher is None
        with pytest.raises(ServerError) as refused:
            await alice.publish("messages.user.bob-sdk", {"forged": True})
        assert refused.value.code == "forbidden"
        with pytest.raises(ServerError) as denied:
            await alice.subscribe("secret.*")
        assert denied.value.code == "forbidden"
        await chat.unsubscribe()
        assert chat.state is SubscriptionState.UNSUBSCRIBED
        await alice.publish("chat.room", {"text": "after"})
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(chat), 2)
    except BaseException:
        print(gateway.logs()[-3000:])
        raise
    finally:
        await alice.close()
        gateway.stop()


async def test_an_operator_disconnect_closes_with_4003_and_the_client_stays_down(stack: Stack) -> None:
    port, metrics = free_port(), free_port()
    gateway = start_gateway(stack, port, metrics)
    calls = 0

    async def fresh_token() -> str:
        nonlocal calls
        calls += 1
        return token("mallory-sdk")

    mallory = Client(f"ws://127.0.0.1:{port}/ws", token=fresh_token, reconnect_min=0.05, reconnect_max=0.2)
    try:
        await mallory.connect()
        await mallory.subscribe("messages.user.mallory-sdk")
        # The api learns of the gateway from its heartbeats; until then it closes nothing.
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            resp = stack.post("/api/users/mallory-sdk/disconnect", {}, token("ops-sdk", "admin"))
            assert resp.status_code == 200, resp.text
            if resp.json().get("closed"):
                break
            assert asyncio.get_running_loop().time() < deadline, resp.text
            await asyncio.sleep(0.5)
        await asyncio.wait_for(mallory.wait_closed(), 5)
        await asyncio.sleep(0.6)  # several backoff windows: no new attempt
        assert mallory.state is ClientState.CLOSED
        assert isinstance(mallory.error, DisconnectedByOperatorError)
        assert mallory.close_codes == [4003] and calls == 1
    except BaseException:
        print(gateway.logs()[-3000:])
        raise
    finally:
        await mallory.close()
        gateway.stop()
