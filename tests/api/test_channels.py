"""/api/channels: ownership, membership and access-revoked events."""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar

from herald_common.events import CHANNEL_ACCESS_REVOKED, MESSAGE_SENT
from tests.api.conftest import auth
from tests.api.test_messages import outbox_events

Client = httpx.AsyncClient


async def create_channel(client: Client, owner: str, name: str = "general") -> dict[str, Any]:
    response = await client.post("/api/channels", json={"name": name}, headers=auth(owner))
    assert response.status_code == 201, response.text
    channel: dict[str, Any] = response.json()
    return channel


async def test_create_makes_the_owner_a_member(client: Client) -> None:
    channel = await create_channel(client, "alice")
    assert set(channel) == {"id", "name", "ownerId", "createdAt"}
    assert channel["ownerId"] == "alice"
    response = await client.get(f"/api/channels/{channel['id']}/members", headers=auth("alice"))
    assert [m["userId"] for m in response.json()] == ["alice"]
    response = await client.get("/api/channels", headers=auth("alice"))
    assert response.json() == [channel]


async def test_list_shows_own_channels_and_everything_to_admin(client: Client) -> None:
    a = await create_channel(client, "alice", "a")
    b = await create_channel(client, "bob", "b")
    assert (await client.get("/api/channels", headers=auth("alice"))).json() == [a]
    assert (await client.get("/api/channels", headers=auth("carol"))).json() == []
    assert (await client.get("/api/channels", headers=auth("root", "admin"))).json() == [a, b]


async def test_non_members_cannot_see_a_channel(client: Client) -> None:
    channel = await create_channel(client, "alice")
    for path in (f"/api/channels/{channel['id']}", f"/api/channels/{channel['id']}/members"):
        response = await client.get(path, headers=auth("mallory"))
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert (await client.get(f"/api/channels/{channel['id']}", headers=auth("root", "admin"))).status_code == 200


async def test_only_owner_or_admin_manage(client: Client) -> None:
    channel = await create_channel(client, "alice")
    base = f"/api/channels/{channel['id']}"
    assert (await client.put(f"{base}/members/bob", headers=auth("alice"))).status_code == 204
    for method, path, body in (
        ("PATCH", base, {"name": "mine"}),
        ("DELETE", base, None),
        ("PUT", f"{base}/members/carol", None),
        ("DELETE", f"{base}/members/alice", None),
    ):
        response = await client.request(method, path, json=body, headers=auth("bob"))
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == "forbidden"
    response = await client.patch(base, json={"name": "renamed"}, headers=auth("root", "admin"))
    assert response.status_code == 200
    assert response.json()["name"] == "renamed"
    response = await client.patch(base, json={"name": "again"}, headers=auth("alice"))
    assert response.json() == {**channel, "name": "again"}


async def test_posting_to_a_channel_needs_membership(client: Client, app: Litestar) -> None:
    channel = await create_channel(client, "alice")
    body = {"content": "hi", "channelId": channel["id"]}
    response = await client.post("/api/messages", json=body, headers=auth("bob"))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    await client.put(f"/api/channels/{channel['id']}/members/bob", headers=auth("alice"))
    response = await client.post("/api/messages", json=body, headers=auth("bob"))
    assert response.status_code == 201
    message = response.json()
    assert message["channelId"] == channel["id"]
    assert (await client.get(f"/api/messages/{message['id']}", headers=auth("alice"))).status_code == 200
    assert (await client.get(f"/api/messages/{message['id']}", headers=auth("carol"))).status_code == 404
    page = (await client.get(f"/api/messages?channelId={channel['id']}", headers=auth("alice"))).json()
    assert page["items"] == [message]
    response = await client.get(f"/api/messages?channelId={channel['id']}", headers=auth("carol"))
    assert response.status_code == 404
    response = await client.post("/api/messages", json={"content": "x", "channelId": "missing"}, headers=auth("bob"))
    assert response.status_code == 404
    assert [t for t, _ in await outbox_events(app)] == [MESSAGE_SENT]


async def test_removing_a_member_revokes_access(client: Client, app: Litestar) -> None:
    channel = await create_channel(client, "alice")
    base = f"/api/channels/{channel['id']}"
    await client.put(f"{base}/members/bob", headers=auth("alice"))
    await client.put(f"{base}/members/bob", headers=auth("alice"))
    members = (await client.get(f"{base}/members", headers=auth("bob"))).json()
    assert [m["userId"] for m in members] == ["alice", "bob"]
    assert (await client.delete(f"{base}/members/bob", headers=auth("alice"))).status_code == 204
    assert (await client.delete(f"{base}/members/bob", headers=auth("alice"))).status_code == 204
    assert (await client.get(base, headers=auth("bob"))).status_code == 404
    response = await client.delete(f"{base}/members/alice", headers=auth("alice"))
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert await outbox_events(app) == [(CHANNEL_ACCESS_REVOKED, {"channelId": channel["id"], "userId": "bob"})]


async def test_deleting_a_channel_revokes_everyone(client: Client, app: Litestar) -> None:
    channel = await create_channel(client, "alice")
    base = f"/api/channels/{channel['id']}"
    await client.put(f"{base}/members/bob", headers=auth("alice"))
    assert (await client.delete(base, headers=auth("alice"))).status_code == 204
    assert (await client.get(base, headers=auth("alice"))).status_code == 404
    assert (await client.get("/api/channels", headers=auth("bob"))).json() == []
    assert await outbox_events(app) == [(CHANNEL_ACCESS_REVOKED, {"channelId": channel["id"], "userId": None})]


async def test_channel_bodies_are_validated(client: Client) -> None:
    for body in ({}, {"name": ""}, {"name": 3}, {"name": "x", "owner": "me"}, {"name": "x" * 201}, {"name": "  "}):
        response = await client.post("/api/channels", json=body, headers=auth("alice"))
        assert response.status_code == 400, body
        assert response.json()["code"] == "bad_request"


async def test_a_removed_member_can_no_longer_change_their_channel_messages(client: Client, app: Litestar) -> None:
    channel = await create_channel(client, "alice")
    base = f"/api/channels/{channel['id']}"
    await client.put(f"{base}/members/bob", headers=auth("alice"))
    kept = await client.post("/api/messages", json={"content": "one", "channelId": channel["id"]}, headers=auth("bob"))
    gone = await client.post("/api/messages", json={"content": "two", "channelId": channel["id"]}, headers=auth("bob"))
    assert kept.status_code == gone.status_code == 201
    assert (await client.delete(f"{base}/members/bob", headers=auth("alice"))).status_code == 204
    before = await outbox_events(app)

    edit = await client.patch(f"/api/messages/{kept.json()['id']}", json={"content": "edited"}, headers=auth("bob"))
    assert edit.status_code == 403, edit.text
    assert edit.json()["code"] == "forbidden"
    delete = await client.delete(f"/api/messages/{gone.json()['id']}", headers=auth("bob"))
    assert delete.status_code == 403, delete.text
    assert await outbox_events(app) == before
    # Unchanged, and still the sender's to read.
    assert (await client.get(f"/api/messages/{kept.json()['id']}", headers=auth("bob"))).json()["content"] == "one"

    # Back in the channel, the sender may change them again.
    await client.put(f"{base}/members/bob", headers=auth("alice"))
    edit = await client.patch(f"/api/messages/{kept.json()['id']}", json={"content": "edited"}, headers=auth("bob"))
    assert edit.status_code == 200, edit.text
    assert (await client.delete(f"/api/messages/{gone.json()['id']}", headers=auth("bob"))).status_code == 204


async def test_messages_of_a_deleted_channel_cannot_be_changed(client: Client) -> None:
    channel = await create_channel(client, "alice")
    posted = await client.post(
        "/api/messages", json={"content": "x", "channelId": channel["id"]}, headers=auth("alice")
    )
    assert (await client.delete(f"/api/channels/{channel['id']}", headers=auth("alice"))).status_code == 204
    message = f"/api/messages/{posted.json()['id']}"
    assert (await client.patch(message, json={"content": "y"}, headers=auth("alice"))).status_code == 403
    assert (await client.delete(message, headers=auth("alice"))).status_code == 403


async def test_a_channel_one_may_not_see_answers_like_a_missing_one(client: Client) -> None:
    channel = await create_channel(client, "alice")
    hidden, missing = channel["id"], "0" * 32

    async def answers(channel_id: str) -> list[tuple[int, str, str]]:
        out = []
        for method, path, body in [
            ("GET", f"/api/messages?channelId={channel_id}", None),
            ("POST", "/api/messages", {"content": "x", "channelId": channel_id}),
            ("GET", f"/api/channels/{channel_id}", None),
            ("GET", f"/api/channels/{channel_id}/members", None),
            ("PATCH", f"/api/channels/{channel_id}", {"name": "n"}),
            ("DELETE", f"/api/channels/{channel_id}", None),
            ("PUT", f"/api/channels/{channel_id}/members/carol", None),
            ("DELETE", f"/api/channels/{channel_id}/members/carol", None),
        ]:
            response = await client.request(method, path, json=body, headers=auth("mallory"))
            error = response.json()
            out.append((response.status_code, error["code"], error["message"].replace(channel_id, "ID")))
        return out

    seen = await answers(hidden)
    assert seen == await answers(missing)
    assert {status for status, _, _ in seen} == {404}
    # An admin sees every channel, so an admin who is not a member is told why instead.
    response = await client.post(
        "/api/messages", json={"content": "x", "channelId": hidden}, headers=auth("r", "admin")
    )
    assert response.status_code == 403
