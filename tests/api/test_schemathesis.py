"""Property-based checks of the live api against its own OpenAPI document (schemathesis).

The real api process runs against a real nats-server and a temporary SQLite database;
every operation of ``/schema/openapi.json`` gets generated requests with an admin token,
a plain user's token and no or a broken token. No response may be a 5xx, and every
response must match the status codes, content types and schemas the document declares.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import checks as st_checks
from schemathesis.core.result import Ok

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
    print(f"{len(statuses)} requests over {operations} operations: statuses {sorted(set(statuses))}")
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < 120
