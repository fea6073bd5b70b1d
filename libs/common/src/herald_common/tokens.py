"""JWT verification (and issuing of development tokens).

The algorithm is never chosen by the token: HS* tokens are checked only against the
shared secret, RS*/ES* tokens only against the configured public key, and only the
algorithms listed in ``HERALD_JWT_ALGORITHMS`` are accepted. ``alg: none`` never is.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import time
import urllib.request
from collections.abc import Iterable
from typing import Any

import jwt
import msgspec

from herald_common.config import Settings
from herald_common.errors import ErrorCode, HeraldError
from herald_common.jsondepth import check_json_depth

log = logging.getLogger(__name__)

ADMIN = "admin"
PUBLISHER = "publisher"

#: The latest instant a time claim (``exp``, ``iat``, ``nbf``) may name: the end of year
#: 9999 UTC. Later values, or huge integers a float cannot hold, are refused with
#: ``unauthorized`` instead of overflowing wherever the time is used (timers, caches).
MAX_TIME_CLAIM = 253_402_300_799
_TIME_CLAIMS = ("exp", "iat", "nbf")

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


_header_decoder = msgspec.json.Decoder(dict[str, Any])


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, decoded but not verified (it only picks the key).

    A lean stand-in for ``jwt.get_unverified_header``, which decodes the whole token; the
    full check (with this header decoded again) is PyJWT's ``decode``. Raises ValueError
    when the token is not three segments or the first is not a base64url JSON object.
    """
    first, sep, rest = token.partition(".")
    if not sep or rest.count(".") != 1:
        raise ValueError("not three dot-separated segments")
    try:
        raw = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4))
        check_json_depth(raw)
        return _header_decoder.decode(raw)
    except (binascii.Error, msgspec.DecodeError, HeraldError) as exc:
        raise ValueError(f"header is not base64url JSON: {exc}") from None


def _unauthorized(message: str) -> HeraldError:
    return HeraldError(ErrorCode.UNAUTHORIZED, message)


def _time_claim(payload: dict[str, Any], name: str) -> float | None:
    """The claim as seconds since the epoch (None if absent), or ``unauthorized``."""
    if name not in payload:
        return None
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _unauthorized(f"claim {name!r} must be a number")
    # Compared as given (no float conversion), so an integer of any size is refused
    # rather than raising OverflowError; NaN fails both comparisons.
    if not 0 <= value <= MAX_TIME_CLAIM:
        raise _unauthorized(f"claim {name!r} must be between 0 and {MAX_TIME_CLAIM}")
    return float(value)


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


class JwksCache:
    """Keys of a JWKS URL by ``kid``, refreshed every ``ttl`` seconds.

    An unknown ``kid`` triggers a refresh (a key rotation), but at most once per
    ``min_refresh`` seconds, so tokens with made-up ids cannot make Herald hammer the
    identity provider. Fetches run in a thread: the event loop never blocks on them.
    """

    def __init__(self, url: str, ttl: float = 300.0, min_refresh: float = 10.0, timeout: float = 5.0) -> None:
        self._url = url
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._timeout = timeout
        self._keys: dict[str, tuple[str | None, Any]] = {}
        self._fetched_at = -float("inf")
        self._attempted_at = -float("inf")
        self._lock = asyncio.Lock()

    def _fetch(self) -> dict[str, tuple[str | None, Any]]:
        with urllib.request.urlopen(self._url, timeout=self._timeout) as resp:
            document = json.loads(resp.read(1_000_000))
        keys: dict[str, tuple[str | None, Any]] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or not entry.get("kid"):
                continue
            try:
                jwk = jwt.PyJWK.from_dict(entry)
            except jwt.PyJWTError as exc:
                log.warning("skipping JWKS key %r: %s", entry.get("kid"), exc)
                continue
            keys[str(entry["kid"])] = (entry.get("alg"), jwk.key)
        return keys

    async def key(self, kid: str, alg: str) -> Any | None:
        """The key for ``kid`` usable with ``alg``, or None."""
        now = time.monotonic()
        stale = now - self._fetched_at > self._ttl
        if (stale or kid not in self._keys) and now - self._attempted_at >= self._min_refresh:
            async with self._lock:
                if time.monotonic() - self._attempted_at >= self._min_refresh:
                    self._attempted_at = time.monotonic()
                    try:
                        self._keys = await asyncio.to_thread(self._fetch)
                        self._fetched_at = time.monotonic()
                    except (OSError, ValueError) as exc:
                        log.warning("JWKS fetch failed, keeping %d cached keys: %s", len(self._keys), exc)
        return self.cached(kid, alg)

    def cached(self, kid: str, alg: str) -> Any | None:
        """The key for ``kid`` if it is already known (no fetch)."""
        found = self._keys.get(kid)
        if found is None:
            return None
        key_alg, key = found
        if key_alg is not None and key_alg != alg:
            return None
        return key


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
        self._jwks = JwksCache(settings.jwt_jwks_url, settings.jwt_jwks_ttl) if settings.jwt_jwks_url else None

    def _header(self, token: object) -> tuple[str, str, dict[str, Any]]:
        if not isinstance(token, str) or not token:
            raise _unauthorized("token must be a non-empty string")
        try:
            header = unverified_header(token)
        except ValueError as exc:
            raise _unauthorized(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise _unauthorized(f"token algorithm {alg!r} is not accepted")
        return token, alg, header

    def _static_key(self, alg: str) -> Any:
        if alg.startswith("HS"):
            if not self._secret:
                raise _unauthorized("HS tokens are not accepted: no secret configured")
            return self._secret
        if not self._public_key:
            raise _unauthorized(f"{alg} tokens are not accepted: no public key configured")
        return self._public_key

    def verify(self, token: object) -> Claims:
        """Return the token's claims or raise ``HeraldError(unauthorized)`` saying why.

        Never does I/O: JWKS keys are used only once cached (:meth:`prefetch` or
        :meth:`verify_async` fetch them).
        """
        token, alg, header = self._header(token)
        kid = header.get("kid")
        if self._jwks is not None and not alg.startswith("HS") and isinstance(kid, str) and kid:
            key = self._jwks.cached(kid, alg)
            if key is None:
                raise _unauthorized(f"no JWKS key {kid[:64]!r} for {alg}")
            return self._decode(token, alg, key)
        if self._jwks is not None and not alg.startswith("HS") and not self._public_key:
            raise _unauthorized("token has no 'kid' to look up in the JWKS")
        return self._decode(token, alg, self._static_key(alg))

    @property
    def uses_jwks(self) -> bool:
        return self._jwks is not None

    async def prefetch(self, token: object) -> None:
        """Make sure the JWKS key ``token`` names is cached, so :meth:`verify` can use it."""
        if self._jwks is None or not isinstance(token, str):
            return
        try:
            _, alg, header = self._header(token)
        except HeraldError:
            return
        kid = header.get("kid")
        if not alg.startswith("HS") and isinstance(kid, str) and kid:
            await self._jwks.key(kid, alg)

    async def verify_async(self, token: object) -> Claims:
        """Like :meth:`verify`; RS/ES tokens with a ``kid`` are checked against the JWKS when one is set."""
        token, alg, header = self._header(token)
        if alg.startswith("HS") or self._jwks is None:
            return self._decode(token, alg, self._static_key(alg))
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            if self._public_key:
                return self._decode(token, alg, self._public_key)
            raise _unauthorized("token has no 'kid' to look up in the JWKS")
        key = await self._jwks.key(kid, alg)
        if key is None:
            raise _unauthorized(f"no JWKS key {kid[:64]!r} for {alg}")
        return self._decode(token, alg, key)

    def _decode(self, token: str, alg: str, key: Any) -> Claims:
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
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # Whatever a hostile payload makes the JWT library trip over is still just a bad token.
            raise _unauthorized(f"invalid token: {type(exc).__name__}") from None
        sub = payload.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _unauthorized("claim 'sub' must be a non-empty string")
        times = {name: _time_claim(payload, name) for name in _TIME_CLAIMS}
        exp = times["exp"]
        if exp is None:
            raise _unauthorized("claim 'exp' must be a number")
        return Claims(
            sub=sub,
            exp=exp,
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
