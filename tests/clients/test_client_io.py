"""The asyncio client's own behaviour against a scripted server: presence, publish
correlation and timeouts, calls before connect, close ending iteration."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.server import ServerConnection

from herald_client import (
    Client,
    HeraldClientError,
    PresenceEvent,
    PresenceKind,
    PresenceSnapshot,
    PublishResult,
    RequestTimeoutError,
    ServerError,
    SubscriptionState,
)
from tests.clients.fakes import FakeGateway, accept_auth, fake_gateway, wait_until


async def presence_gateway(ws: ServerConnection, n: int, gateway: FakeGateway) -> None:
    """Answers like a gateway with presence: join/leave after a presence subscribe, and the query."""
    await accept_auth(ws, gateway)
    async for raw in ws:
        frame = json.loads(raw)
        gateway.frames.append(frame)
        if frame["type"] == "subscribe":
            await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"]}))
            if frame.get("presence"):
                for kind, user in [("join", "bob"), ("join", "carol"), ("leave", "bob")]:
                    await ws.send(json.dumps({"type": kind, "topic": frame["topic"], "userId": user}))
        elif frame["type"] == "presence":
            answer = {"type": "presence", "topic": frame["topic"], "users": ["alice", "carol"], "id": frame["id"]}
            await ws.send(json.dumps(answer))
        elif frame["type"] == "message":
            if frame["topic"] == "slow.topic":
                continue  # never answered: the publish times out
            if frame["topic"].startswith("messages"):
                error = {"type": "error", "code": "forbidden", "message": "reserved", "id": frame["id"]}
                await ws.send(json.dumps(error))
                continue
            await ws.send(json.dumps({"type": "published", "topic": frame["topic"], "offset": 41, "id": frame["id"]}))


async def test_presence_events_on_the_subscription_and_the_presence_query() -> None:
    async with fake_gateway(presence_gateway) as gateway:
        client = Client(gateway.url, token="t")
        await client.connect()
        seen: list[PresenceEvent] = []
        sub = await client.subscribe("room.1", presence=True, on_presence=seen.append)
        events: list[tuple[PresenceKind, str]] = []
        async for event in sub.presence_events():
            events.append((event.kind, event.user_id))
            if len(events) == 3:
                break
        assert events == [(PresenceKind.JOIN, "bob"), (PresenceKind.JOIN, "carol"), (PresenceKind.LEAVE, "bob")]
        assert [e.user_id for e in seen] == ["bob", "carol", "bob"]
        # The client asked who is there after subscribing; that answer came after the events.
        await wait_until(lambda: sub.members == {"alice", "carol"}, 2, "the roster")
        assert await client.presence("room.1") == PresenceSnapshot("room.1", 2, ["alice", "carol"])
        [subscribe] = [f for f in gateway.frames if f["type"] == "subscribe"]
        assert subscribe["presence"] is True
        await client.close()


async def test_publishes_are_matched_to_their_answers_by_id() -> None:
    async with fake_gateway(presence_gateway) as gateway:
        client = Client(gateway.url, token="t", request_timeout=0.5)
        await client.connect()
        ok, refused, slow = await asyncio.gather(
            client.publish("a.b", {"x": 1}),
            client.publish("messages.x", 1),
            client.publish("slow.topic", 2),
            return_exceptions=True,
        )
        assert ok == PublishResult("a.b", 41)
        assert isinstance(refused, ServerError) and refused.code == "forbidden"
        assert isinstance(slow, RequestTimeoutError)
        assert len({f["id"] for f in gateway.frames if f["type"] == "message"}) == 3
        await client.close()


async def test_calls_before_connect_are_refused() -> None:
    client = Client("ws://127.0.0.1:9/ws", token="t")
    with pytest.raises(HeraldClientError, match="connect"):
        await client.publish("a.b", 1)
    with pytest.raises(HeraldClientError, match="connect"):
        await client.subscribe("a.b")


async def test_close_ends_every_subscription_iteration() -> None:
    async with fake_gateway(presence_gateway) as gateway:
        client = Client(gateway.url, token="t")
        await client.connect()
        sub = await client.subscribe("a.b")
        states: list[SubscriptionState] = []
        sub.on_state_change(lambda old, new: states.append(new))
        reader = asyncio.create_task(anext(sub))
        await asyncio.sleep(0.05)
        await client.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(reader, 2)
        assert states == [SubscriptionState.UNSUBSCRIBED]


async def test_a_slow_app_holds_reading_back_without_being_taken_for_a_dead_socket() -> None:
    async def flood(ws: ServerConnection, n: int, gateway: FakeGateway) -> None:
        await accept_auth(ws, gateway)
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif frame["type"] == "subscribe":
                await ws.send(json.dumps({"type": "subscribed", "topic": frame["topic"], "id": frame["id"]}))
                for i in range(1, 11):
                    await ws.send(json.dumps({"type": "message", "topic": "a.b", "data": i, "offset": i, "epoch": "e"}))

    async with fake_gateway(flood) as gateway:
        client = Client(gateway.url, token="t", max_pending=2, ping_interval=0.1, ping_timeout=0.1)
        await client.connect()
        sub = await client.subscribe("a.b")
        got = []
        async for message in sub:
            got.append(message.data)
            await asyncio.sleep(0.25)  # the buffer stays full longer than ping interval + timeout
            if len(got) == 10:
                break
        assert got == list(range(1, 11))
        assert client.connections == 1 and client.close_codes == []
        assert sub.position is not None and sub.position.offset == 10
        await client.close()


async def test_failing_app_callbacks_do_not_break_the_client() -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("the app's bug")

    async with fake_gateway(presence_gateway) as gateway:
        client = Client(gateway.url, token="t", on_state_change=broken)
        await client.connect()
        sub = await client.subscribe("room.1", presence=True, on_presence=broken)
        assert (await client.presence("room.1")).users == ["alice", "carol"]
        assert sub.members == {"alice", "carol"}
        with pytest.raises(TypeError):
            await client.publish("a.b", object())  # not JSON: refused at once, nothing sent
        assert (await client.publish("a.b", [1])).offset == 41
        await client.close()
