"""CORS: off by default; HERALD_CORS_ORIGINS lets listed browser origins call the api."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from herald_api.app import create_app
from herald_common.config import ConfigError, load_settings
from tests.api.conftest import auth, make_settings, serving

APP = "https://app.example.com"
PREFLIGHT = {
    "Origin": APP,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


async def test_without_origins_there_are_no_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.options("/api/messages", headers=PREFLIGHT)
    assert not any(name.startswith("access-control-") for name in response.headers)
    response = await client.get("/api/messages", headers={"Origin": APP, **auth("alice")})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_listed_origins_get_preflights_answered_without_a_token(
    tmp_path: Path, database_url: str, unused_nats_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, unused_nats_url, cors_origins=[APP, "http://localhost:3000"])
    async with serving(create_app(settings)) as http:
        for path in ("/api/messages", "/api/publish", "/api/messages/abc", "/api/channels/c/members/u"):
            response = await http.options(path, headers=PREFLIGHT)
            assert response.status_code == 204, (path, response.text)
            assert response.headers["access-control-allow-origin"] == APP
            methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
            assert {"GET", "POST", "PATCH", "DELETE", "PUT"} <= methods
            allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
            assert {"authorization", "content-type"} <= allowed
            assert "access-control-allow-credentials" not in response.headers
        # The real request then carries the origin back, and still needs its token.
        response = await http.get("/api/messages", headers={"Origin": APP, **auth("alice")})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == APP
        response = await http.get("/api/messages", headers={"Origin": APP})
        assert response.status_code == 401
        # An origin that is not listed is refused its preflight and gets no allow-origin.
        other = await http.options("/api/messages", headers={**PREFLIGHT, "Origin": "https://evil.example"})
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        response = await http.get("/api/messages", headers={"Origin": "https://evil.example", **auth("alice")})
        assert "access-control-allow-origin" not in response.headers


async def test_a_star_allows_any_origin(tmp_path: Path, database_url: str, unused_nats_url: str) -> None:
    settings = make_settings(tmp_path, database_url, unused_nats_url, cors_origins=["*"])
    async with serving(create_app(settings)) as http:
        response = await http.options("/api/publish", headers={**PREFLIGHT, "Origin": "https://anyone.example"})
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == "*"


def test_origins_are_read_from_the_environment_and_checked() -> None:
    assert load_settings({"HERALD_CORS_ORIGINS": f"{APP}, http://localhost:3000"}).cors_origins == [
        APP,
        "http://localhost:3000",
    ]
    assert load_settings({"HERALD_CORS_ORIGINS": "*"}).cors_origins == ["*"]
    assert load_settings({}).cors_origins == []
    for bad in ("app.example.com", "https://app.example.com/", "ftp://x", "https://"):
        with pytest.raises(ConfigError, match="HERALD_CORS_ORIGINS"):
            load_settings({"HERALD_CORS_ORIGINS": bad})
