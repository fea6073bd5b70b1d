"""The operator endpoints without NATS, and their place in the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from herald_api.app import create_app
from herald_common.tokens import issue_token
from tests.api.conftest import SECRET, make_settings, serving


@pytest.fixture
async def http(tmp_path: Path, unused_nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'herald.db'}", unused_nats_url))
    async with serving(app) as h:
        yield h


ADMIN = {"Authorization": f"Bearer {issue_token(SECRET, 'ops', roles=['admin'])}"}


async def test_without_nats_nobody_is_heard_of_and_the_gateways_cannot_be_asked(http: httpx.AsyncClient) -> None:
    nodes = await http.get("/api/nodes", headers=ADMIN)
    assert nodes.status_code == 200
    assert nodes.json()["nodes"] == []
    for method, path in [
        ("GET", "/api/topics"),
        ("GET", "/api/users/alice/connections"),
        ("POST", "/api/users/alice/disconnect"),
    ]:
        resp = await http.request(method, path, headers=ADMIN)
        assert resp.status_code == 503, (path, resp.text)
        assert resp.json() == {"code": "unavailable", "message": "not connected to NATS"}


async def test_bad_paging_parameters_are_400(http: httpx.AsyncClient) -> None:
    for params in ({"limit": "0"}, {"limit": "201"}, {"search": "x" * 256}):
        resp = await http.get("/api/topics", params=params, headers=ADMIN)
        assert resp.status_code == 400, (params, resp.text)
        assert resp.json()["code"] == "bad_request"


async def test_the_operator_endpoints_are_documented_and_need_a_bearer_token(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/schema/openapi.json")).json()
    paths = doc["paths"]
    expected = {
        "/api/nodes": "get",
        "/api/topics": "get",
        "/api/users/{user_id}/connections": "get",
        "/api/users/{user_id}/disconnect": "post",
    }
    for path, method in expected.items():
        operation = paths[path][method]
        assert operation["tags"] == ["operators"], path
        assert operation["security"] == [{"BearerToken": []}], path
        assert {"401", "403"} <= set(operation["responses"]), path
    assert not [p for p in paths if p.startswith("/console")]
