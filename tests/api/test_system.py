"""Health, readiness, metrics, OpenAPI and generic error handling."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from herald_api.app import create_app
from tests.api.conftest import auth, make_settings, serving


async def test_healthz_and_readyz_without_nats(client: httpx.AsyncClient) -> None:
    # Exactly the bodies docs/rest.md and docs/operations.md show.
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "nats": None, "database": None}
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "nats": False, "database": True}
    docs = (Path(__file__).parents[2] / "docs").joinpath
    for page in ("rest.md", "operations.md"):
        text = docs(page).read_text()
        assert '{"status": "ok", "nats": null, "database": null}' in text, page
        assert '{"status": "ready", "nats": true, "database": true}' in text, page


async def test_unknown_routes_are_404_json(client: httpx.AsyncClient) -> None:
    for path in ("/nope", "/api/nope"):
        response = await client.get(path, headers=auth("a"))
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


async def test_wrong_method_is_a_json_error(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert response.status_code == 405
    assert set(response.json()) == {"code", "message"}


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_oversized_bodies_are_413(tmp_path: Path, database_url: str, unused_nats_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url, unused_nats_url, max_body_bytes=200))
    async with serving(app) as http:
        response = await http.post("/api/messages", json={"content": "x" * 300}, headers=auth("a"))
        assert response.status_code == 413
        assert response.json()["code"] == "too_large"

        streamed = await http.post(
            "/api/messages",
            content=_chunks([b'{"content": "', b"y" * 300, b'"}']),
            headers={**auth("a"), "Content-Type": "application/json"},
        )
        assert streamed.status_code == 413
        assert streamed.json()["code"] == "too_large"
        ok = await http.post("/api/messages", json={"content": "small"}, headers=auth("a"))
        assert ok.status_code == 201


async def test_metrics_count_routes_and_backlog(client: httpx.AsyncClient) -> None:
    await client.post("/api/messages", json={"content": "x"}, headers=auth("a"))
    await client.get("/api/messages/abc", headers=auth("a"))
    text = (await client.get("/metrics")).text
    assert 'herald_api_requests_total{method="POST",route="/api/messages",status="201"} 1.0' in text
    assert 'route="/api/messages/{message_id}",status="404"} 1.0' in text
    assert "herald_api_outbox_backlog 1.0" in text
    assert "herald_api_request_seconds_bucket" in text


async def test_openapi_documents_every_route(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    paths = schema["paths"]
    expected = {
        "/api/messages": {"get", "post"},
        "/api/messages/{message_id}": {"get", "patch", "delete"},
        "/api/channels": {"get", "post"},
        "/api/channels/{channel_id}": {"get", "patch", "delete"},
        "/api/channels/{channel_id}/members": {"get"},
        "/api/channels/{channel_id}/members/{user_id}": {"put", "delete"},
        "/api/publish": {"post"},
        "/healthz": {"get"},
        "/readyz": {"get"},
        "/metrics": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    page = schema["components"]["schemas"]["MessagePage"]
    assert "nextBefore" in page["properties"]
    assert "BearerToken" in schema["components"]["securitySchemes"]


async def test_the_docs_page_is_served_by_the_api_alone(client: httpx.AsyncClient) -> None:
    for path in ("/schema", "/schema/swagger"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        page = response.text
        # Nothing is fetched from anywhere but the api: every URL in the page is a path on it.
        assert "http://" not in page and "https://" not in page and "//cdn" not in page
        referenced = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", page)
        assert referenced and all(url.startswith("/schema/") for url in referenced), referenced
        assert "validatorUrl: null" in page
        for url in referenced:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 0
    script = await client.get("/schema/assets/swagger-ui-bundle.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in script.text
    assert (await client.get("/schema/assets/index.html")).status_code == 404
    assert (await client.get("/schema/assets/..%2F__init__.py")).status_code == 404
    assert (await client.get("/schema/openapi.yaml")).status_code == 200
