"""POST/GET/PATCH/DELETE /api/messages and history pagination.

Every test runs with POST answered by :mod:`herald_api.fastpath` and by litestar's handler."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from litestar import Litestar

from herald_api.app import create_app
from herald_api.storage.protocols import Message
from herald_common.config import Settings
from herald_common.events import MESSAGE_DELETED, MESSAGE_SENT, MESSAGE_UPDATED, decode_event
from tests.api.conftest import app_storage, auth

Client = httpx.AsyncClient


@pytest.fixture(params=[True, False], ids=["fast-path", "litestar"])
def app(settings: Settings, request: pytest.FixtureRequest) -> Litestar:
    return create_app(settings, fast_paths=request.param)


async def send(client: Client, sub: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/messages", json=body, headers=auth(sub))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def outbox_events(app: Litestar) -> list[tuple[str, dict[str, Any]]]:
    async with app_storage(app).transaction() as tx:
        entries = await tx.outbox.pending(1000)
    return [(e.type, e.data) for e in (decode_event(entry.payload) for entry in entries)]


async def test_post_returns_the_message_and_writes_its_event(client: Client, app: Litestar) -> None:
    message = await send(client, "alice", content="hello", recipientId="bob")
    assert set(message) == {"id", "senderId", "recipientId", "channelId", "content", "createdAt"}
    assert message["senderId"] == "alice"
    assert message["recipientId"] == "bob"
    assert message["channelId"] is None
    assert message["content"] == "hello"
    assert message["createdAt"].endswith("Z")
    assert await outbox_events(app) == [(MESSAGE_SENT, message)]


async def test_get_is_visible_to_sender_recipient_and_admin_only(client: Client) -> None:
    message = await send(client, "alice", content="secret", recipientId="bob")
    for reader in (auth("alice"), auth("bob"), auth("root", "admin")):
        response = await client.get(f"/api/messages/{message['id']}", headers=reader)
        assert response.status_code == 200
        assert response.json() == message
    response = await client.get(f"/api/messages/{message['id']}", headers=auth("mallory"))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_unknown_message_is_404(client: Client) -> None:
    response = await client.get("/api/messages/nope", headers=auth("alice"))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_patch_and_delete_by_sender_emit_events(client: Client, app: Litestar) -> None:
    message = await send(client, "alice", content="first", recipientId="bob")
    response = await client.patch(f"/api/messages/{message['id']}", json={"content": "second"}, headers=auth("alice"))
    assert response.status_code == 200
    updated = response.json()
    assert updated == {**message, "content": "second"}
    response = await client.delete(f"/api/messages/{message['id']}", headers=auth("alice"))
    assert response.status_code == 204
    response = await client.get(f"/api/messages/{message['id']}", headers=auth("alice"))
    assert response.status_code == 404
    assert await outbox_events(app) == [
        (MESSAGE_SENT, message),
        (MESSAGE_UPDATED, updated),
        (MESSAGE_DELETED, updated),
    ]


async def test_only_the_sender_changes_a_message(client: Client, app: Litestar) -> None:
    message = await send(client, "alice", content="mine", recipientId="bob")
    url = f"/api/messages/{message['id']}"
    response = await client.patch(url, json={"content": "hacked"}, headers=auth("bob"))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    response = await client.delete(url, headers=auth("bob"))
    assert response.status_code == 403
    response = await client.delete(url, headers=auth("mallory"))
    assert response.status_code == 404
    response = await client.get(url, headers=auth("alice"))
    assert response.json()["content"] == "mine"
    assert [t for t, _ in await outbox_events(app)] == [MESSAGE_SENT]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"content": 5},
        {"content": ""},
        {"content": None},
        {"content": "x", "recipientId": 7},
        {"content": "x", "unknown": 1},
        {"content": "x" * 16_385},
        {"content": "   "},
        {"content": "x", "recipientId": "bob", "channelId": "c"},
        [],
        "text",
    ],
)
async def test_invalid_bodies_are_400(client: Client, app: Litestar, body: Any) -> None:
    response = await client.post("/api/messages", content=json.dumps(body), headers=auth("alice"))
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "bad_request"
    assert isinstance(error["message"], str) and error["message"]
    assert await outbox_events(app) == []


async def test_malformed_json_is_400(client: Client) -> None:
    headers = {**auth("alice"), "Content-Type": "application/json"}
    response = await client.post("/api/messages", content=b'{"content": "x"', headers=headers)
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


async def test_patch_validates_too(client: Client) -> None:
    message = await send(client, "alice", content="x")
    url = f"/api/messages/{message['id']}"
    for body in ({}, {"content": 1}, {"content": "y", "extra": True}):
        response = await client.patch(url, json=body, headers=auth("alice"))
        assert response.status_code == 400
        assert response.json()["code"] == "bad_request"


async def insert_messages(app: Litestar, rows: list[tuple[str, str, str | None, int]]) -> None:
    async with app_storage(app).transaction() as tx:
        for message_id, sender, recipient, created_us in rows:
            await tx.messages.add(Message(message_id, sender, recipient, None, "x", created_us))


async def read_all(client: Client, sub: str, query: str, limit: int) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    before: str | None = None
    while True:
        url = f"/api/messages?{query}&limit={limit}" + (f"&before={before}" if before else "")
        response = await client.get(url, headers=auth(sub))
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) <= limit
        ids.extend(item["id"] for item in page["items"])
        before = page["nextBefore"]
        if before is None:
            return ids, pages


async def test_pagination_has_no_gaps_or_duplicates_with_equal_timestamps(client: Client, app: Litestar) -> None:
    rows: list[tuple[str, str, str | None, int]] = []
    for i in range(40):
        created = 1_700_000_000_000_000 + (i // 10)  # four groups of ten equal timestamps
        sender, recipient = ("alice", "bob") if i % 2 else ("bob", "alice")
        rows.append((f"id-{i:03d}-{(i * 7919) % 97:02d}", sender, recipient, created))
    rows.append(("other", "alice", "carol", 1_700_000_000_000_002))
    await insert_messages(app, rows)
    ids, pages = await read_all(client, "alice", "withUser=bob", 7)
    expected = [r[0] for r in sorted((r for r in rows if r[0] != "other"), key=lambda r: (r[3], r[0]), reverse=True)]
    assert ids == expected
    assert pages == 6
    everything, _ = await read_all(client, "alice", "", 3)
    assert len(everything) == len(set(everything)) == 41
    bob_view, _ = await read_all(client, "bob", "withUser=alice", 40)
    assert bob_view == expected


async def test_limit_is_capped_at_page_limit_max(client: Client, app: Litestar) -> None:
    await insert_messages(app, [(f"m{i:03d}", "alice", "bob", i) for i in range(120)])
    response = await client.get("/api/messages?limit=1000", headers=auth("alice"))
    page = response.json()
    assert len(page["items"]) == 100
    assert page["nextBefore"] is not None


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=abc", "before=garbage", "channelId=a&withUser=b", "before=bm90LWEtY3Vyc29y"],
)
async def test_bad_history_queries_are_400(client: Client, query: str) -> None:
    response = await client.get(f"/api/messages?{query}", headers=auth("alice"))
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


async def test_history_never_shows_other_peoples_messages(client: Client) -> None:
    await send(client, "alice", content="to bob", recipientId="bob")
    response = await client.get("/api/messages?withUser=bob", headers=auth("mallory"))
    assert response.json() == {"items": [], "nextBefore": None}
    response = await client.get("/api/messages", headers=auth("mallory"))
    assert response.json()["items"] == []
