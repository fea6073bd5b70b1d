"""POST /api/publish: roles and topic validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar import Litestar

from herald_common.events import TOPIC_PUBLISHED
from tests.api.conftest import auth
from tests.api.test_messages import outbox_events


@pytest.mark.parametrize("role", ["publisher", "admin"])
async def test_publisher_and_admin_may_publish(client: httpx.AsyncClient, app: Litestar, role: str) -> None:
    response = await client.post(
        "/api/publish", json={"topic": "a.b-c.d_e", "data": [1, None]}, headers=auth("s", role)
    )
    assert response.status_code == 202
    assert await outbox_events(app) == [(TOPIC_PUBLISHED, {"topic": "a.b-c.d_e", "data": [1, None]})]


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
