"""JWT verification (and issuing of development tokens).

The algorithm is never chosen by the token: HS* tokens are checked only against the
shared secret, RS*/ES* tokens only against the configured public key, and only the
algorithms listed in ``HERALD_JWT_ALGORITHMS`` are accepted. ``alg: none`` never is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import jwt
import msgspec

from herald_common.config import Settings
from herald_common.errors import ErrorCode, HeraldError

ADMIN = "admin"
PUBLISHER = "publisher"

_SUPPORTED = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}


class Claims(msgspec.Struct, frozen=True):
    """What Herald relies on from a verified token."""

    sub: str
    exp: float
    roles: frozenset[str] = frozenset()
    topics: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def can_publish_rest(self) -> bool:
        return ADMIN in self.roles or PUBLISHER in self.roles


def _unauthorized(message: str) -> HeraldError:
    return HeraldError(ErrorCode.UNAUTHORIZED, message)


def _string_list(payload: dict[str, Any], name: str) -> tuple[str, ...]:
    value = payload.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _unauthorized(f"claim {name!r} must be a list of strings")
    return tuple(value)


def _load_public_key(value: str) -> str:
    if value and "-----BEGIN" not in value and os.path.exists(value):
        with open(value, encoding="utf-8") as fh:
            return fh.read()
    return value


class TokenVerifier:
    """Verifies tokens against the configured keys; reuse one per process."""

    def __init__(self, settings: Settings) -> None:
        unknown = set(settings.jwt_algorithms) - _SUPPORTED
        if unknown:
            raise ValueError(f"unsupported HERALD_JWT_ALGORITHMS: {', '.join(sorted(unknown))}")
        self._algorithms = frozenset(settings.jwt_algorithms)
        self._secret = settings.jwt_secret
        self._public_key = _load_public_key(settings.jwt_public_key)
        self._audience = settings.jwt_audience or None
        self._issuer = settings.jwt_issuer or None
        self._leeway = settings.jwt_leeway

    def _key_for(self, token: str, alg: str) -> Any:
        if alg.startswith("HS"):
            if not self._secret:
                raise _unauthorized("HS tokens are not accepted: no secret configured")
            return self._secret
        if not self._public_key:
            raise _unauthorized(f"{alg} tokens are not accepted: no public key configured")
        return self._public_key

    def verify(self, token: object) -> Claims:
        """Return the token's claims or raise ``HeraldError(unauthorized)`` saying why."""
        if not isinstance(token, str) or not token:
            raise _unauthorized("token must be a non-empty string")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise _unauthorized(f"token algorithm {alg!r} is not accepted")
        key = self._key_for(token, alg)
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token has expired") from None
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"invalid token: {exc}") from None
        sub = payload.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _unauthorized("claim 'sub' must be a non-empty string")
        exp = payload.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise _unauthorized("claim 'exp' must be a number")
        return Claims(
            sub=sub,
            exp=float(exp),
            roles=frozenset(_string_list(payload, "roles")),
            topics=_string_list(payload, "topics"),
            publish=_string_list(payload, "publish"),
        )


def issue_token(
    secret: str,
    sub: str,
    *,
    roles: Iterable[str] = (),
    ttl: float = 3600,
    topics: Iterable[str] = (),
    publish: Iterable[str] = (),
    extra: dict[str, Any] | None = None,
) -> str:
    """An HS256 token for development and tests."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + int(ttl)}
    if roles := list(roles):
        payload["roles"] = roles
    if topics := list(topics):
        payload["topics"] = topics
    if publish := list(publish):
        payload["publish"] = publish
    payload.update(extra or {})
    return jwt.encode(payload, secret, algorithm="HS256")
