"""Property-based checks of the live api against its own OpenAPI document (schemathesis), and
the classes of hostile input found by hand (deep nesting, absurd numbers and claims).

The real api process runs against a real nats-server and a temporary SQLite database;
every operation of ``/schema/openapi.json`` gets generated requests with an admin token,
a plain user's token and no or a broken token. No response may be a 5xx, and every
response must match the status codes, content types and schemas the document declares.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import checks as st_checks
from schemathesis.core.result import Ok

from herald_common.jsondepth import MAX_JSON_DEPTH
from herald_common.tokens import issue_token
from tests.support.procs import NatsServer, Service, free_port, wait_http_ok

pytestmark = pytest.mark.integration

SECRET = "schemathesis-secret-of-at-least-32-bytes"

CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]


@pytest.fixture
def api_url(tmp_path: Path, nats_server: NatsServer) -> Iterator[str]:
    port = free_port()
    env = {
        "HERALD_API_PORT": str(port),
        "HERALD_NATS_URL": nats_server.url,
        "HERALD_DATA_DIR": str(tmp_path / "data"),
        "HERALD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'herald.db'}",
        "HERALD_JWT_SECRET": SECRET,
        # Hundreds of generated POSTs per token: the limiter has its own tests.
        "HERALD_API_POST_RATE": "0",
    }
    api = Service("api", env, tmp_path / "api.log")
    api.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(base + "/readyz", proc=api.proc)
        yield base
    finally:
        code = api.stop()
        logs = api.logs()
        assert code == 0, logs
        assert "Traceback" not in logs, logs


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _exercise(
    operation: Any, base: str, session: requests.Session, headers: dict[str, str], examples: int, statuses: list[int]
) -> None:
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case[Any]) -> None:
        response = case.call_and_validate(base_url=base, session=session, headers=headers, checks=CHECKS, timeout=10)
        statuses.append(response.status_code)

    run()


# A few hundred generated requests; on a loaded machine that can take minutes, and the test
# proves conformance, not speed.
@pytest.mark.timeout(600)
def test_every_operation_conforms_and_never_fails(api_url: str) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(api_url + "/schema/openapi.json")
    identities = [
        (_bearer(issue_token(SECRET, "root", roles=["admin", "publisher"])), 30),
        (_bearer(issue_token(SECRET, "alice", topics=["orders.**"])), 15),
        ({}, 5),
        (_bearer("not-a-jwt"), 3),
    ]
    failures: list[str] = []
    statuses: list[int] = []
    operations = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            operation = result.ok()
            operations += 1
            for headers, examples in identities:
                try:
                    _exercise(operation, api_url, session, headers, examples, statuses)
                except Exception as exc:  # collect every operation's failure, not just the first
                    who = headers.get("Authorization", "no token")[:20]
                    failures.append(f"{operation.method.upper()} {operation.path} ({who}...): {exc}")
    assert operations >= 17
    # Generated requests got past authentication and validation, not only 400s and 401s.
    assert {200, 201, 400, 401, 404} <= set(statuses), sorted(set(statuses))
    print(
        f"{len(statuses)} requests over {operations} operations in {time.monotonic() - started:.0f}s: "
        f"statuses {sorted(set(statuses))}"
    )
    assert not failures, "\n\n".join(failures)


def _nested(levels: int) -> str:
    text = "1"
    for level in range(levels):
        text = f'{{"k":{text}}}' if level % 2 else f"[{text}]"
    return text


def _signed(payload: str) -> dict[str, str]:
    """A correctly signed HS256 token carrying ``payload`` verbatim (huge numbers, NaN...)."""

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(payload.encode())
    signature = b64(hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest())
    return _bearer((signing_input + b"." + signature).decode())


HUGE = "9" * 5000
#: Query values no integer parameter accepts (each has a lower bound of 0 or 1).
NOT_INTEGERS = [HUGE, "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "-1", "1.5", "0x10", "1_000", " 1"]
#: Integers no one needs; a bounded parameter refuses them, a capped one (`limit`) caps them.
ABSURD_INTEGERS = [str(10**400), "-" + str(10**400), str(2**64), str(2**63)]
ABSURD_TOKENS = [
    f'{{"sub":"a","exp":{10**400}}}',
    '{"sub":"a","exp":1e400}',
    '{"sub":"a","exp":NaN}',
    '{"sub":"a","exp":"NaN"}',
    '{"sub":"a","exp":-1e400}',
    f'{{"sub":"a","exp":{HUGE}}}',
    '{"sub":"a","exp":[]}',
    f'{{"sub":"a","exp":{int(time.time()) + 600},"nbf":1e400,"iat":NaN}}',
]


def _operations(base: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (method, concrete path, operation) of the served OpenAPI document."""
    document = requests.get(base + "/schema/openapi.json", timeout=10).json()
    found = []
    for template, item in document["paths"].items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                found.append((method.upper(), path, operation))
    return found


def test_nesting_absurd_numbers_and_claims_never_fail(api_url: str) -> None:
    """The classes of hostile input found by hand, thrown at every operation of the document,
    so a route added later is covered too: no 5xx, and the documented 400/401."""
    admin = _bearer(issue_token(SECRET, "root", roles=["admin", "publisher"]))
    operations = _operations(api_url)
    assert len(operations) >= 17
    failures: list[str] = []

    def expect(response: requests.Response, allowed: set[int], what: str) -> None:
        if response.status_code not in allowed:
            failures.append(f"{what}: {response.status_code} {response.text[:200]}")

    with requests.Session() as session:
        for method, path, operation in operations:
            url = api_url + path
            if "requestBody" in operation:
                for levels in (64, 970, 5000):
                    body = '{"content":"x","name":"n","topic":"a.b","data":' + _nested(levels) + "}"
                    response = session.request(
                        method, url, data=body, headers={**admin, "Content-Type": "application/json"}, timeout=10
                    )
                    expect(response, {400}, f"{method} {path} nested {levels}")
                    if response.status_code == 400 and response.json().get("code") != "bad_request":
                        failures.append(f"{method} {path} nested {levels}: {response.text[:200]}")
                unbalanced = "[" * 100_000
                response = session.request(
                    method, url, data=unbalanced, headers={**admin, "Content-Type": "application/json"}, timeout=10
                )
                expect(response, {400}, f"{method} {path} unbalanced")
            if path.startswith("/api/"):
                for payload in ABSURD_TOKENS:
                    response = session.request(method, url, json={}, headers=_signed(payload), timeout=10)
                    expect(response, {401}, f"{method} {path} token {payload[:40]}")
            for parameter in operation.get("parameters", []):
                if parameter.get("in") != "query":
                    continue
                integer = "integer" in str(parameter.get("schema", {}))
                for value in NOT_INTEGERS + ABSURD_INTEGERS:
                    response = session.request(
                        method, url, params={parameter["name"]: value}, headers=admin, timeout=10
                    )
                    what = f"{method} {path} ?{parameter['name']}={value[:20]}"
                    expect(response, {400} if integer and value in NOT_INTEGERS else set(range(200, 500)), what)
    assert not failures, "\n".join(failures)


@hypothesis.settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(levels=st.integers(min_value=0, max_value=300), inside=st.booleans())
def test_publish_depth_is_refused_exactly_past_the_limit(api_url: str, levels: int, inside: bool) -> None:
    # Nested right in `data`, or below an ordinary field; the body's own object is level 1.
    data = _nested(levels) if not inside else '{"list":[1,2],"deep":' + _nested(levels) + "}"
    depth = 1 + levels + (1 if inside else 0)
    publisher = _bearer(issue_token(SECRET, "p", roles=["publisher"]))
    response = requests.post(
        api_url + "/api/publish",
        data='{"topic":"deep.t","data":' + data + "}",
        headers={**publisher, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == (202 if depth <= MAX_JSON_DEPTH else 400), (depth, response.text)
