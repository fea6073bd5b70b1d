from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from herald_common.config import load_settings
from herald_common.errors import ErrorCode, HeraldError
from herald_common.tokens import TokenVerifier, issue_token, unverified_header

SECRET = "test-secret-of-a-reasonable-length-0123456789"


def verifier(**env: str) -> TokenVerifier:
    return TokenVerifier(load_settings({"HERALD_JWT_SECRET": SECRET, **env}))


def rejects(v: TokenVerifier, token: object, fragment: str) -> None:
    with pytest.raises(HeraldError) as info:
        v.verify(token)
    assert info.value.code is ErrorCode.UNAUTHORIZED
    assert fragment in info.value.message


def test_valid_token_gives_claims() -> None:
    token = issue_token(SECRET, "alice", roles=["admin"], topics=["news.*"], publish=["chat.**"])
    claims = verifier().verify(token)
    assert claims.sub == "alice"
    assert claims.is_admin and claims.can_publish_rest
    assert claims.topics == ("news.*",)
    assert claims.publish == ("chat.**",)
    assert claims.exp > time.time()


def test_plain_user_has_no_roles() -> None:
    claims = verifier().verify(issue_token(SECRET, "bob"))
    assert not claims.is_admin and not claims.can_publish_rest
    assert claims.roles == frozenset()


def test_expired() -> None:
    token = jwt.encode({"sub": "a", "exp": int(time.time()) - 10}, SECRET, algorithm="HS256")
    rejects(verifier(), token, "expired")


def test_wrong_key() -> None:
    rejects(verifier(), issue_token("another-secret-entirely-0123456789", "a"), "invalid token")


def test_missing_sub() -> None:
    token = jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    rejects(verifier(), token, "sub")


def test_missing_exp() -> None:
    token = jwt.encode({"sub": "a"}, SECRET, algorithm="HS256")
    rejects(verifier(), token, "exp")


@pytest.mark.parametrize("sub", ["", 5, None, ["a"]])
def test_bad_sub(sub: object) -> None:
    token = jwt.encode({"sub": sub, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    rejects(verifier(), token, "")


def _b64(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_alg_none_is_refused() -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': 'a', 'exp': int(time.time()) + 60})}."
    rejects(verifier(), token, "algorithm 'none' is not accepted")


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b", 42, None, "x" * 5000])
def test_malformed(token: object) -> None:
    rejects(verifier(), token, "")


@pytest.mark.parametrize("claim", ["roles", "topics", "publish"])
def test_list_claims_must_be_string_lists(claim: str) -> None:
    token = jwt.encode({"sub": "a", "exp": int(time.time()) + 60, claim: "admin"}, SECRET, algorithm="HS256")
    rejects(verifier(), token, claim)


def _rsa_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def test_rs256_and_es256_with_public_key() -> None:
    private, public = _rsa_pair()
    v = verifier(HERALD_JWT_ALGORITHMS="RS256", HERALD_JWT_PUBLIC_KEY=public.decode())
    token = jwt.encode({"sub": "r", "exp": int(time.time()) + 60}, private, algorithm="RS256")
    assert v.verify(token).sub == "r"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    v = verifier(HERALD_JWT_ALGORITHMS="ES256", HERALD_JWT_PUBLIC_KEY=ec_public.decode())
    assert v.verify(jwt.encode({"sub": "e", "exp": int(time.time()) + 60}, ec_key, algorithm="ES256")).sub == "e"


def test_algorithm_confusion_is_refused() -> None:
    """An HS256 token whose HMAC key is the RSA *public* key never verifies."""
    _, public = _rsa_pair()
    v = verifier(HERALD_JWT_ALGORITHMS="HS256,RS256", HERALD_JWT_PUBLIC_KEY=public.decode())
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': 'x', 'exp': int(time.time()) + 60})}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    rejects(v, forged, "invalid token")


def test_only_configured_algorithms() -> None:
    rejects(
        verifier(HERALD_JWT_ALGORITHMS="RS256"),
        issue_token(SECRET, "a"),
        "algorithm 'HS256' is not accepted",
    )


def test_audience_and_issuer_checked_when_configured() -> None:
    v = verifier(HERALD_JWT_AUDIENCE="herald", HERALD_JWT_ISSUER="https://issuer.example")
    good = issue_token(SECRET, "a", extra={"aud": "herald", "iss": "https://issuer.example"})
    assert v.verify(good).sub == "a"
    rejects(v, issue_token(SECRET, "a", extra={"aud": "other", "iss": "https://issuer.example"}), "")
    rejects(v, issue_token(SECRET, "a", extra={"aud": "herald", "iss": "https://evil.example"}), "")
    rejects(v, issue_token(SECRET, "a"), "")


@pytest.mark.parametrize(
    "headers",
    [{}, {"kid": "k1"}, {"kid": "ключ", "typ": "at+jwt"}, {"x5t": "a" * 45}],
)
def test_the_lean_header_parse_reads_what_pyjwt_reads(headers: dict[str, str]) -> None:
    token = jwt.encode({"sub": "alice", "exp": time.time() + 60}, "s" * 32, algorithm="HS256", headers=headers)
    assert unverified_header(token) == jwt.get_unverified_header(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.b.c",
        base64.urlsafe_b64encode(b"[1, 2]").decode().rstrip("=") + ".b.c",  # not an object
        base64.urlsafe_b64encode(b'{"alg": "HS256"').decode().rstrip("=") + ".b.c",  # cut short
    ],
)
def test_the_lean_header_parse_refuses_what_is_not_a_jws(token: str) -> None:
    with pytest.raises(ValueError, match=r"segments|base64url JSON"):
        unverified_header(token)


def signed(payload_json: str, header_json: str = '{"alg":"HS256","typ":"JWT"}') -> str:
    """A correctly signed HS256 token around exactly this JSON (which no JSON encoder would write)."""

    def part(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()

    signing_input = f"{part(header_json)}.{part(payload_json)}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


HUGE = "1" + "0" * 400  # 10**400: an int that no float can hold
SOON = int(time.time()) + 600


@pytest.mark.parametrize(
    "claims",
    [
        f'"exp":{HUGE}',
        '"exp":1e300',
        '"exp":1e400',
        '"exp":NaN',
        '"exp":Infinity',
        '"exp":253402300800',
        f'"exp":-{HUGE}',
        f'"exp":{SOON},"iat":{HUGE}',
        f'"exp":{SOON},"iat":-{HUGE}',
        f'"exp":{SOON},"iat":NaN',
        f'"exp":{SOON},"nbf":{HUGE}',
        f'"exp":{SOON},"nbf":-{HUGE}',
        f'"exp":{SOON},"nbf":-1e400',
        '"exp":' + "9" * 5000,
    ],
)
def test_absurd_time_claims_are_unauthorized(claims: str) -> None:
    with pytest.raises(HeraldError) as info:
        verifier().verify(signed(f'{{"sub":"a",{claims}}}'))
    assert info.value.code is ErrorCode.UNAUTHORIZED


def test_time_claims_up_to_year_9999_are_accepted() -> None:
    claims = verifier().verify(signed(f'{{"sub":"a","exp":253402300799,"iat":{SOON - 600},"nbf":0}}'))
    assert claims.exp == 253402300799.0


def test_deeply_nested_tokens_are_unauthorized() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    rejects(verifier(), signed(f'{{"sub":"a","exp":{SOON},"x":{deep}}}'), "invalid token")
    rejects(verifier(), signed(f'{{"sub":"a","exp":{SOON}}}', f'{{"alg":"HS256","x":{deep}}}'), "malformed")
