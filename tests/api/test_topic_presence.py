"""GET /api/topics/{topic}/presence: authorized like a subscription, answered by a gateway over NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nats.aio.msg import Msg

from herald_api.app import create_app
from herald_common import presence
from herald_common.tokens import issue_token
from tests.api.conftest import SECRET, make_settings, serving, wait_until
from tests.support.natsclients import connect_nats


def bearer(sub: str, *topics: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, sub, topics=list(topics))}"}


@pytest.fixture
async def http(tmp_path: Path, nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db' / 'herald.db'}", nats_url))
    async with serving(app) as h:

        async def ready() -> bool:
            return (await h.get("/readyz")).status_code == 200

        await wait_until(ready)
        yield h


async def test_without_any_gateway_nobody_is_there(http: httpx.AsyncClient) -> None:
    resp = await http.get("/api/topics/room.1/presence", headers=bearer("alice", "room.*"))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"topic": "room.1", "count": 0, "users": []}


async def test_a_gateway_s_answer_is_passed_on(http: httpx.AsyncClient, nats_url: str) -> None:
    nc = await connect_nats(nats_url)
    asked: list[str] = []

    async def answer(msg: Msg) -> None:
        topic = presence.query_decoder.decode(msg.data).topic
        asked.append(topic)
        if topic == "room.big":
            body = presence.TopicPresence(topic=topic, count=5000)
        else:
            users = [presence.UserPresence(user_id="bob", connections=2)]
            body = presence.TopicPresence(topic=topic, count=1, users=users)
        await msg.respond(presence.encoder.encode(body))

    try:
        await nc.subscribe(presence.QUERY_SUBJECT, queue=presence.GATEWAY_QUEUE, cb=answer)
        await nc.flush()
        resp = await http.get("/api/topics/room.1/presence", headers=bearer("alice", "room.*"))
        assert resp.json() == {"topic": "room.1", "count": 1, "users": [{"userId": "bob", "connections": 2}]}
        resp = await http.get("/api/topics/room.big/presence", headers=bearer("alice", "room.*"))
        assert resp.json() == {"topic": "room.big", "count": 5000}  # above the cap: the count only
        assert asked == ["room.1", "room.big"]
    finally:
        await nc.close()


async def test_only_whoever_may_subscribe_may_ask(http: httpx.AsyncClient) -> None:
    resp = await http.get("/api/topics/room.1/presence", headers=bearer("mallory"))
    assert resp.status_code == 403 and resp.json()["code"] == "forbidden"
    resp = await http.get("/api/topics/messages.user.mallory/presence", headers=bearer("mallory"))
    assert resp.status_code == 200
    resp = await http.get("/api/topics/room.*/presence", headers=bearer("alice", "room.*"))
    assert resp.status_code == 400 and resp.json()["code"] == "invalid_topic"
    assert (await http.get("/api/topics/room.1/presence")).status_code == 401


async def test_the_route_is_in_the_openapi_document(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/schema/openapi.json")).json()
    route = doc["paths"]["/api/topics/{topic}/presence"]["get"]
    assert set(route["responses"]) >= {"200", "400", "401", "403", "503"}
