"""Every api response sends nosniff and a Referrer-Policy: litestar's handlers, its errors, the
fast-path producer routes and the 431 the request-head bound writes itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from herald_api.app import create_app
from herald_api.httphead import _response
from herald_common.tokens import issue_token
from tests.api.conftest import SECRET, make_settings, serving
from tests.support.procs import free_port


def token(sub: str, *roles: str) -> str:
    return issue_token(SECRET, sub, roles=roles)


ADMIN = token("ops", "admin")


@pytest.fixture(params=[True, False], ids=["fast-paths", "litestar-only"])
async def http(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'herald.db'}", f"nats://127.0.0.1:{free_port()}")
    async with serving(create_app(settings, fast_paths=request.param)) as h:
        yield h


def secured(resp: httpx.Response) -> None:
    assert resp.headers.get("x-content-type-options") == "nosniff", (resp.request.url, resp.headers)
    assert resp.headers.get("referrer-policy") == "no-referrer", (resp.request.url, resp.headers)


async def test_every_kind_of_response_carries_them(http: httpx.AsyncClient) -> None:
    publisher = {"Authorization": f"Bearer {token('p', 'publisher')}"}
    responses = [
        await http.get("/healthz"),
        await http.get("/readyz"),  # 503: NATS is not there
        await http.get("/metrics"),
        await http.get("/schema/openapi.json"),
        await http.get("/no/such/route"),
        await http.delete("/healthz"),
        await http.get("/api/nodes"),
        await http.get("/api/nodes", headers={"Authorization": f"Bearer {token('u')}"}),
        await http.get("/api/nodes", headers={"Authorization": f"Bearer {ADMIN}"}),
        await http.post("/api/publish", content=b"{}"),
        await http.post("/api/publish", content=b"not json", headers=publisher),
        await http.post("/api/publish", json={"topic": "a.b", "data": 1}, headers=publisher),
        await http.post("/api/messages", json={"content": "x"}),
        await http.post("/api/publish/batch", json={"items": []}, headers=publisher),
    ]
    statuses = [r.status_code for r in responses]
    assert statuses[:9] == [200, 503, 200, 200, 404, 405, 401, 403, 200], statuses
    assert {400, 401} <= set(statuses[9:])
    for resp in responses:
        secured(resp)


def test_the_431_written_before_any_application_code_carries_them() -> None:
    head = _response(1024).split(b"\r\n\r\n")[0].decode().lower().split("\r\n")
    assert "x-content-type-options: nosniff" in head
    assert "referrer-policy: no-referrer" in head
