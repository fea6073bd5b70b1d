"""Bearer-token authentication on every /api route."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import pytest

from herald_api.auth import VerifiedTokens
from herald_common.tokens import Claims, issue_token
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


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _claims(sub: str, exp: float) -> Claims:
    return Claims(sub=sub, exp=exp)


def test_verified_tokens_are_remembered_for_ttl_seconds() -> None:
    clock = _Clock(1000.0)
    verified = VerifiedTokens(ttl=30, clock=clock)
    claims = _claims("a", exp=5000)
    verified.put("t", claims)
    assert verified.get("t") is claims
    clock.now = 1029.9
    assert verified.get("t") is claims
    clock.now = 1030.0
    assert verified.get("t") is None  # verified again from here on
    assert verified.get("other") is None


def test_a_remembered_token_still_expires_at_exp_plus_leeway() -> None:
    clock = _Clock(1000.0)
    verified = VerifiedTokens(ttl=300, leeway=5, clock=clock)
    verified.put("t", _claims("a", exp=1010))
    clock.now = 1014.9
    assert verified.get("t") is not None
    clock.now = 1015.0
    assert verified.get("t") is None


def test_verified_tokens_forget_the_oldest_when_full() -> None:
    verified = VerifiedTokens(ttl=30, max_size=2, clock=_Clock(0.0))
    for token in ("t1", "t2", "t3"):
        verified.put(token, _claims(token, exp=100))
    assert verified.get("t1") is None
    assert verified.get("t2") is not None
    assert verified.get("t3") is not None


async def test_an_expired_token_is_refused_even_after_it_was_accepted(client: httpx.AsyncClient) -> None:
    token = issue_token(SECRET, "alice", ttl=1)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/channels", headers=headers)).status_code == 200
    # Claims.exp is whole seconds: wait until the token is past it.
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)
    response = await client.get("/api/channels", headers=headers)
    assert response.status_code == 401
