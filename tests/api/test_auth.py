"""Bearer-token authentication on every /api route."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.api.conftest import SECRET, auth

Client = httpx.AsyncClient

ROUTES = [
    ("GET", "/api/messages"),
    ("POST", "/api/messages"),
    ("GET", "/api/messages/x"),
    ("PATCH", "/api/messages/x"),
    ("DELETE", "/api/messages/x"),
    ("GET", "/api/channels"),
    ("POST", "/api/channels"),
    ("GET", "/api/channels/x"),
    ("PATCH", "/api/channels/x"),
    ("DELETE", "/api/channels/x"),
    ("GET", "/api/channels/x/members"),
    ("PUT", "/api/channels/x/members/u"),
    ("DELETE", "/api/channels/x/members/u"),
    ("POST", "/api/publish"),
]


WRONG_SECRET = "wrong-secret-also-at-least-32-bytes-long"


def _bad_tokens() -> list[dict[str, str]]:
    now = int(time.time())
    return [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Bearer " + jwt.encode({"sub": "a", "exp": now + 60}, WRONG_SECRET, algorithm="HS256")},
        {"Authorization": "Bearer " + jwt.encode({"sub": "a", "exp": now - 60}, SECRET, algorithm="HS256")},
        {"Authorization": "Bearer " + jwt.encode({"sub": "a"}, SECRET, algorithm="HS256")},
    ]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_api_route_needs_a_token(client: Client, method: str, path: str) -> None:
    for headers in _bad_tokens():
        response = await client.request(method, path, headers=headers, json={"content": "x"})
        assert response.status_code == 401, (headers, response.text)
        body = response.json()
        assert body["code"] == "unauthorized"
        assert body["message"]


async def test_valid_token_is_accepted(client: Client) -> None:
    response = await client.get("/api/messages", headers=auth("alice"))
    assert response.status_code == 200
