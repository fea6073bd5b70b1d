"""POST /api/publish and /api/publish/batch: roles, validation, batches, idempotency keys.

Every test runs twice: through :mod:`herald_api.fastpath` and through the litestar handlers,
which must answer alike."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from litestar import Litestar

from herald_api.app import create_app
from herald_api.storage.protocols import Storage
from herald_common.config import Settings
from herald_common.topics import TOPIC_PREFIX
from herald_common.wire import decode_publication
from tests.api.conftest import auth


async def outbox_events(app: Litestar) -> list[tuple[str, Any]]:
    """The (topic, data) of each publication waiting in the outbox, in order (NATS is away)."""
    storage: Storage = app.state.storage
    async with storage.transaction() as tx:
        entries = await tx.outbox.pending(2000)
    found = []
    for entry in entries:
        assert entry.subject.startswith(TOPIC_PREFIX)
        publication = decode_publication(entry.payload)
        assert publication.id == entry.event_id
        found.append((entry.subject.removeprefix(TOPIC_PREFIX), json.loads(bytes(publication.data))))
    return found


@pytest.fixture(params=[True, False], ids=["fast-path", "litestar"])
def app(settings: Settings, request: pytest.FixtureRequest) -> Litestar:
    return create_app(settings, fast_paths=request.param)


@pytest.mark.parametrize("role", ["publisher", "admin"])
async def test_publisher_and_admin_may_publish(client: httpx.AsyncClient, app: Litestar, role: str) -> None:
    response = await client.post(
        "/api/publish", json={"topic": "a.b-c.d_e", "data": [1, None]}, headers=auth("s", role)
    )
    assert response.status_code == 202
    assert await outbox_events(app) == [("a.b-c.d_e", [1, None])]


async def test_others_may_not(client: httpx.AsyncClient, app: Litestar) -> None:
    response = await client.post("/api/publish", json={"topic": "a", "data": 1}, headers=auth("user"))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert await outbox_events(app) == []


@pytest.mark.parametrize("topic", ["", "a..b", "a.*", "a.**", "with space", "é", "a." * 17 + "a", "x" * 256])
async def test_bad_topics_are_invalid_topic(client: httpx.AsyncClient, topic: str) -> None:
    response = await client.post("/api/publish", json={"topic": topic, "data": 1}, headers=auth("s", "publisher"))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_topic"


@pytest.mark.parametrize(
    "body", [{"topic": "a"}, {"data": 1}, {"topic": 1, "data": 1}, {"topic": "a", "data": 1, "x": 2}]
)
async def test_bad_bodies_are_bad_request(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/api/publish", json=body, headers=auth("s", "publisher"))
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


@pytest.mark.parametrize("raw", [b"", b"{", b"[1]", b"null", b'{"topic":"a","data":1}x'])
async def test_unreadable_bodies_are_bad_request(client: httpx.AsyncClient, app: Litestar, raw: bytes) -> None:
    headers = auth("s", "publisher") | {"Content-Type": "application/json"}
    response = await client.post("/api/publish", content=raw, headers=headers)
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert await outbox_events(app) == []


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer ", "Bearer not-a-jwt"])
async def test_missing_or_bad_tokens_are_unauthorized(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    for path, body in (("/api/publish", {"topic": "a", "data": 1}), ("/api/publish/batch", {"items": []})):
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 401, (path, header)
        assert response.json()["code"] == "unauthorized"


async def test_an_oversized_body_is_too_large(client: httpx.AsyncClient, app: Litestar, settings: Settings) -> None:
    body = {"topic": "a", "data": "x" * settings.max_body_bytes}
    response = await client.post("/api/publish", json=body, headers=auth("s", "publisher"))
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert await outbox_events(app) == []


async def test_reserved_namespace_is_forbidden(client: httpx.AsyncClient, app: Litestar) -> None:
    for topic in ("messages", "messages.user.bob", "messages.channel.c1"):
        response = await client.post("/api/publish", json={"topic": topic, "data": 1}, headers=auth("s", "admin"))
        assert response.status_code == 403, topic
        assert response.json()["code"] == "forbidden"
    assert await outbox_events(app) == []


async def test_a_batch_is_recorded_in_item_order(client: httpx.AsyncClient, app: Litestar) -> None:
    items = [{"topic": f"t.{n % 3}", "data": n} for n in range(10)]
    response = await client.post("/api/publish/batch", json={"items": items}, headers=auth("s", "publisher"))
    assert response.status_code == 202
    ids = response.json()["eventIds"]
    assert len(ids) == len(set(ids)) == 10
    assert await outbox_events(app) == [(f"t.{n % 3}", n) for n in range(10)]


@pytest.mark.parametrize(
    ("bad", "code", "status"),
    [({"topic": "a..b", "data": 1}, "invalid_topic", 400), ({"topic": "messages.user.x", "data": 1}, "forbidden", 403)],
)
async def test_a_bad_batch_item_is_named_and_nothing_is_published(
    client: httpx.AsyncClient, app: Litestar, bad: dict[str, Any], code: str, status: int
) -> None:
    items: list[dict[str, Any]] = [{"topic": "ok", "data": n} for n in range(5)]
    items[3] = bad
    response = await client.post("/api/publish/batch", json={"items": items}, headers=auth("s", "publisher"))
    assert response.status_code == status
    assert response.json()["code"] == code
    assert "items[3]" in response.json()["message"]
    assert await outbox_events(app) == []


@pytest.mark.parametrize(
    "items", [[], [{"topic": "a", "data": 1}] * 1001, [{"topic": "a"}], [{"topic": "a", "data": 1, "x": 1}]]
)
async def test_malformed_batches_are_bad_request(
    client: httpx.AsyncClient, app: Litestar, items: list[dict[str, Any]]
) -> None:
    response = await client.post("/api/publish/batch", json={"items": items}, headers=auth("s", "publisher"))
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert await outbox_events(app) == []


async def test_batches_need_the_publisher_role(client: httpx.AsyncClient, app: Litestar) -> None:
    response = await client.post("/api/publish/batch", json={"items": [{"topic": "a", "data": 1}]}, headers=auth("u"))
    assert response.status_code == 403
    assert await outbox_events(app) == []


async def test_an_idempotency_key_gives_the_same_event_id_per_publisher(client: httpx.AsyncClient) -> None:
    async def publish(sub: str, key: str) -> str:
        body = {"topic": "a", "data": 1, "idempotencyKey": key}
        response = await client.post("/api/publish", json=body, headers=auth(sub, "publisher"))
        assert response.status_code == 202
        event_id: str = response.json()["eventId"]
        return event_id

    first = await publish("app1", "order-17")
    assert await publish("app1", "order-17") == first
    assert await publish("app1", "order-18") != first
    assert await publish("app2", "order-17") != first


async def test_a_publication_says_who_published_it(client: httpx.AsyncClient, app: Litestar) -> None:
    for path, body in (
        ("/api/publish", {"topic": "a", "data": 1}),
        ("/api/publish/batch", {"items": [{"topic": "b", "data": 2}]}),
    ):
        assert (await client.post(path, json=body, headers=auth("svc-7", "publisher"))).status_code == 202
    storage: Storage = app.state.storage
    async with storage.transaction() as tx:
        entries = await tx.outbox.pending(10)
    assert [decode_publication(entry.payload).publisher for entry in entries] == ["svc-7", "svc-7"]


async def test_publishes_are_counted_under_their_route(client: httpx.AsyncClient) -> None:
    for body in ({"topic": "a", "data": 1}, {"topic": "a..b", "data": 1}):
        await client.post("/api/publish", json=body, headers=auth("s", "publisher"))
    metrics = (await client.get("/metrics")).text
    assert 'herald_api_requests_total{method="POST",route="/api/publish",status="202"} 1.0' in metrics
    assert 'herald_api_requests_total{method="POST",route="/api/publish",status="400"} 1.0' in metrics
