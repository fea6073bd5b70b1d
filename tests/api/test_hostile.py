"""Hostile REST input: nesting, absurd token claims, oversized headers."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar

from herald_common.jsondepth import MAX_JSON_DEPTH
from tests.api.conftest import auth
from tests.api.test_messages import outbox_events

Client = httpx.AsyncClient


def nested(levels: int) -> str:
    """JSON text nesting ``levels`` containers, arrays and objects in turn."""
    text = '"x"'
    for level in range(levels):
        text = f'{{"k":{text}}}' if level % 2 else f"[{text}]"
    return text


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH, 970, 5000])
@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", "/api/messages", '{"content":"hi","recipientId":"bob","x":@}'),
        ("POST", "/api/publish", '{"topic":"deep.topic","data":@}'),
        ("POST", "/api/channels", '{"name":"n","x":@}'),
        ("PATCH", "/api/messages/m1", '{"content":"hi","x":@}'),
        ("PATCH", "/api/channels/c1", '{"name":"n","x":@}'),
    ],
)
async def test_a_body_nested_past_the_limit_is_bad_request(
    client: Client, app: Litestar, method: str, path: str, template: str, levels: int
) -> None:
    body = template.replace("@", nested(levels))
    response = await client.request(
        method, path, content=body, headers={**auth("root", "admin"), "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"
    assert str(MAX_JSON_DEPTH) in response.json()["message"]
    assert await outbox_events(app) == []


async def test_a_publication_at_the_limit_is_accepted(client: Client) -> None:
    # The body's own object is level 1, so `data` may nest one level less.
    body = '{"topic":"deep.topic","data":@}'.replace("@", nested(MAX_JSON_DEPTH - 1))
    response = await client.post(
        "/api/publish", content=body, headers={**auth("p", "publisher"), "Content-Type": "application/json"}
    )
    assert response.status_code == 202, response.text


async def test_brackets_in_strings_are_not_nesting(client: Client) -> None:
    content = "[" * 5000 + "{" * 5000
    response = await client.post("/api/messages", json={"content": content}, headers=auth("alice"))
    assert response.status_code == 201, response.text
    assert response.json()["content"] == content
