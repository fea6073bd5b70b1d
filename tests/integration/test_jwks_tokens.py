"""RS256 and ES256 tokens from a JWKS URL, end to end: REST, WebSocket, delivery."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import websocket
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.jwks import Jwks
from tests.support.procs import NatsServer
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    server = Jwks()
    yield server
    server.close()


def sign(sub: str, key: Any, alg: str, kid: str, aud: str = "herald") -> str:
    claims = {"sub": sub, "exp": int(time.time()) + 300, "aud": aud}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def test_jwks_tokens_work_across_the_stack(nats_server: NatsServer, tmp_path: Path, jwks: Jwks) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks.add("rsa-1", rsa_key, "RS256")
    jwks.add("ec-1", ec_key, "ES256")
    env = {"HERALD_JWT_ALGORITHMS": "RS256,ES256", "HERALD_JWT_JWKS_URL": jwks.url, "HERALD_JWT_AUDIENCE": "herald"}
    stack = Stack(nats=nats_server, root=tmp_path)
    try:
        stack.start_api(**env)
        stack.start_bridge(**env)
        gw = stack.start_gateway(**env)
        exp = int(time.time()) + 300
        alice = jwt.encode(
            {"sub": "alice", "exp": exp, "aud": "herald"}, ec_key, algorithm="ES256", headers={"kid": "ec-1"}
        )
        bob = jwt.encode(
            {"sub": "bob", "exp": exp, "aud": "herald"}, rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}
        )
        wrong_aud = jwt.encode(
            {"sub": "bob", "exp": exp, "aud": "other"}, rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}
        )

        ws = websocket.create_connection(gw.url, timeout=10)
        ws.send(json.dumps({"type": "auth", "token": alice}))
        assert json.loads(ws.recv()) == {"type": "auth_success", "userId": "alice"}
        ws.send(json.dumps({"type": "subscribe", "topic": "messages.user.alice"}))
        assert json.loads(ws.recv())["type"] == "subscribed"

        resp = stack.post("/api/messages", {"content": "signed by a JWKS key", "recipientId": "alice"}, bob)
        assert resp.status_code == 201, resp.text
        frame = json.loads(ws.recv())
        assert frame["type"] == "message"
        assert frame["data"]["content"] == "signed by a JWKS key"
        ws.close()

        assert stack.post("/api/messages", {"content": "x"}, wrong_aud).status_code == 401
        unknown = jwt.encode(
            {"sub": "eve", "exp": exp, "aud": "herald"},
            rsa.generate_private_key(65537, 2048),
            algorithm="RS256",
            headers={"kid": "rsa-1"},
        )
        assert stack.post("/api/messages", {"content": "x"}, unknown).status_code == 401
        ws = websocket.create_connection(gw.url, timeout=10)
        ws.send(json.dumps({"type": "auth", "token": unknown}))
        assert json.loads(ws.recv())["code"] == "unauthorized"
        ws.close()
        assert jwks.hits <= 4, "keys are cached, not fetched per request"
    finally:
        stack.stop()
