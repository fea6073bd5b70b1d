from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from herald_common.config import load_settings
from herald_common.errors import HeraldError
from herald_common.tokens import JwksCache, TokenVerifier
from tests.support.jwks import Jwks


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    server = Jwks()
    yield server
    server.close()


def sign(key: Any, alg: str, kid: str | None, sub: str = "u") -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 60}, key, algorithm=alg, headers=headers)


async def test_rs256_and_es256_by_kid(jwks: Jwks) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks.add("r1", rsa_key, "RS256")
    jwks.add("e1", ec_key, "ES256")
    v = TokenVerifier(load_settings({"HERALD_JWT_ALGORITHMS": "RS256,ES256", "HERALD_JWT_JWKS_URL": jwks.url}))
    assert (await v.verify_async(sign(rsa_key, "RS256", "r1", "rsa-user"))).sub == "rsa-user"
    assert (await v.verify_async(sign(ec_key, "ES256", "e1", "ec-user"))).sub == "ec-user"
    assert jwks.hits == 1, "keys are cached"


async def test_unknown_kid_and_wrong_key(jwks: Jwks) -> None:
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks.add("k1", good, "RS256")
    v = TokenVerifier(load_settings({"HERALD_JWT_ALGORITHMS": "RS256", "HERALD_JWT_JWKS_URL": jwks.url}))
    with pytest.raises(HeraldError, match="no JWKS key"):
        await v.verify_async(sign(good, "RS256", "nope"))
    with pytest.raises(HeraldError, match="invalid token"):
        await v.verify_async(sign(other, "RS256", "k1"))
    with pytest.raises(HeraldError, match="kid"):
        await v.verify_async(sign(good, "RS256", None))


async def test_key_declared_for_another_algorithm_is_not_used(jwks: Jwks) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks.add("k", key, "RS256")
    jwks.keys[0]["alg"] = "RS512"
    v = TokenVerifier(load_settings({"HERALD_JWT_ALGORITHMS": "RS256", "HERALD_JWT_JWKS_URL": jwks.url}))
    with pytest.raises(HeraldError, match="no JWKS key"):
        await v.verify_async(sign(key, "RS256", "k"))


async def test_rotation_is_picked_up_but_unknown_ids_do_not_hammer(jwks: Jwks) -> None:
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks.add("old", old, "RS256")
    # min_refresh must outlast the 20 look-ups below even on a loaded machine.
    cache = JwksCache(jwks.url, ttl=300, min_refresh=2.0)
    assert await cache.key("old", "RS256") is not None
    assert await cache.key("new", "RS256") is None
    jwks.add("new", new, "RS256")
    for _ in range(20):  # made-up ids within min_refresh: no extra fetches
        assert await cache.key("made-up", "RS256") is None
    hits = jwks.hits
    assert hits <= 3
    await asyncio.sleep(2.1)
    assert await cache.key("new", "RS256") is not None
    assert jwks.hits == hits + 1


async def test_hs_tokens_never_consult_the_jwks(jwks: Jwks) -> None:
    secret = "a-secret-of-at-least-thirty-two-bytes!!"
    v = TokenVerifier(
        load_settings(
            {"HERALD_JWT_SECRET": secret, "HERALD_JWT_ALGORITHMS": "HS256,RS256", "HERALD_JWT_JWKS_URL": jwks.url}
        )
    )
    token = jwt.encode({"sub": "h", "exp": int(time.time()) + 60}, secret, algorithm="HS256", headers={"kid": "x"})
    assert (await v.verify_async(token)).sub == "h"
    assert jwks.hits == 0


async def test_sync_verify_uses_only_cached_keys(jwks: Jwks) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks.add("k", key, "RS256")
    v = TokenVerifier(load_settings({"HERALD_JWT_ALGORITHMS": "RS256", "HERALD_JWT_JWKS_URL": jwks.url}))
    token = sign(key, "RS256", "k", "sync-user")
    with pytest.raises(HeraldError, match="no JWKS key"):
        v.verify(token)  # nothing fetched yet, and verify never does I/O
    assert jwks.hits == 0
    await v.prefetch(token)
    assert v.verify(token).sub == "sync-user"
    assert jwks.hits == 1
