"""POST /api/publish refuses what would let a publisher pass for someone else."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar

from tests.api.conftest import auth
from tests.api.test_messages import outbox_events


@pytest.mark.parametrize(
    "topic", ["messages", "messages.user.alice", "messages.channel.c1", "messages.user.alice.extra", "messages.x"]
)
@pytest.mark.parametrize("role", ["publisher", "admin"])
async def test_the_messages_namespace_is_forbidden(
    client: httpx.AsyncClient, app: Litestar, topic: str, role: str
) -> None:
    response = await client.post(
        "/api/publish", json={"topic": topic, "data": {"content": "forged"}}, headers=auth("mallory", role)
    )
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden"
    assert await outbox_events(app) == []


@pytest.mark.parametrize("topic", ["messagesx", "my.messages", "orders.messages.user.alice"])
async def test_topics_that_only_look_alike_are_fine(client: httpx.AsyncClient, topic: str) -> None:
    response = await client.post("/api/publish", json={"topic": topic, "data": 1}, headers=auth("p", "publisher"))
    assert response.status_code == 202, response.text
