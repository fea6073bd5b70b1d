"""Hostile REST input: nesting, absurd token claims, oversized headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time

import httpx
import pytest
from litestar import Litestar

from herald_api.auth import VerifiedTokens
from herald_common.jsondepth import MAX_JSON_DEPTH
from herald_common.tokens import Claims
from tests.api.conftest import SECRET, auth
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


def signed(payload: str) -> dict[str, str]:
    """A bearer header with a correctly signed HS256 token whose payload is ``payload`` verbatim
    (JSON that a JSON encoder would not write: huge integers, NaN, Infinity)."""

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(payload.encode())
    signature = b64(hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest())
    return {"Authorization": "Bearer " + (signing_input + b"." + signature).decode()}


SOON = int(time.time()) + 3600
ABSURD_CLAIMS = [
    f'{{"sub":"a","exp":{10**400}}}',
    f'{{"sub":"a","exp":-{10**400}}}',
    f'{{"sub":"a","exp":{"9" * 5000}}}',
    '{"sub":"a","exp":1e400}',
    '{"sub":"a","exp":-1e400}',
    '{"sub":"a","exp":NaN}',
    '{"sub":"a","exp":Infinity}',
    '{"sub":"a","exp":-Infinity}',
    '{"sub":"a","exp":"NaN"}',
    '{"sub":"a","exp":"1e400"}',
    f'{{"sub":"a","exp":"{SOON}"}}',
    '{"sub":"a","exp":-1}',
    '{"sub":"a","exp":true}',
    '{"sub":"a","exp":null}',
    '{"sub":"a","exp":[1]}',
    '{"sub":"a","exp":{"n":1}}',
    f'{{"sub":"a","exp":{SOON},"nbf":{10**400}}}',
    f'{{"sub":"a","exp":{SOON},"nbf":1e400}}',
    f'{{"sub":"a","exp":{SOON},"iat":{10**400}}}',
    f'{{"sub":"a","exp":{SOON},"iat":NaN}}',
    f'{{"sub":{10**400},"exp":{SOON}}}',
    f'{{"sub":["a"],"exp":{SOON}}}',
    f'{{"sub":"a","exp":{SOON},"roles":"admin"}}',
    f'{{"sub":"a","exp":{SOON},"roles":[{10**400}]}}',
    f'{{"sub":"a","exp":{SOON},"topics":[[[]]]}}',
    f'{{"sub":"a","exp":{SOON},"x":{"[" * 5000 + "]" * 5000}}}',
    "[1]",
    "null",
    "1e400",
]


@pytest.mark.parametrize("payload", ABSURD_CLAIMS)
async def test_absurd_claims_are_401(client: Client, payload: str) -> None:
    headers = signed(payload)
    for method, path in [("GET", "/api/messages"), ("POST", "/api/publish"), ("GET", "/api/topics/a.b/history")]:
        # Twice: the second time through the verified-token cache, had the first let it in.
        for _ in range(2):
            response = await client.request(method, path, headers=headers, json={"topic": "a.b", "data": 1})
            assert response.status_code == 401, (payload[:80], path, response.text)
            assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize("exp", ["1e300", str(2**64), str(2**1023)])
async def test_far_but_finite_expiry_is_never_a_server_error(client: Client, exp: str) -> None:
    headers = signed(f'{{"sub":"a","exp":{exp}}}')
    for _ in range(2):
        response = await client.get("/api/messages", headers=headers)
        assert response.status_code in (200, 401), response.text


@pytest.mark.parametrize("exp", [math.inf, -math.inf, math.nan])
def test_a_non_finite_expiry_is_never_remembered(exp: float) -> None:
    verified = VerifiedTokens(ttl=30)
    verified.put("t", Claims(sub="a", exp=exp))
    assert verified.get("t") is None
