"""The console's files: served by the api with strict headers, nothing from elsewhere, and the
SDK bundle it serves equal to a fresh build of clients/typescript."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from herald_api.app import create_app
from herald_api.console.routes import FILES, STATIC, content_security_policy, gateway_url, trace_url
from herald_common.config import load_settings
from tests.api.conftest import make_settings, serving
from tests.console.browser import unavailable
from tests.support.procs import free_port

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "clients" / "typescript"


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'herald.db'}", f"nats://127.0.0.1:{free_port()}", gateway_port=9100
    )
    async with serving(create_app(settings)) as h:
        yield h


async def test_the_page_and_every_file_it_names_are_served_with_a_strict_policy(http: httpx.AsyncClient) -> None:
    page = await http.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert csp == content_security_policy("ws://127.0.0.1:9100/ws")
    assert "connect-src 'self' ws://127.0.0.1:9100;" in csp
    for directive in ("default-src 'none'", "script-src 'self';", "style-src 'self';", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert '<meta name="herald-gateway" content="ws://127.0.0.1:9100/ws">' in page.text
    named = re.findall(r'(?:src|href)="/console/static/([^"]+)"', page.text)
    assert {"app.js", "herald.min.js", "console.css", "icon.svg"} <= set(named)
    for name in sorted(FILES):
        resp = await http.get(f"/console/static/{name}")
        assert resp.status_code == 200, name
        assert resp.content == (STATIC / name).read_bytes()
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["content-security-policy"] == csp
    imported = {
        m
        for name in FILES
        if name.endswith(".js")
        for m in re.findall(r'from "\./([^"]+)"', (STATIC / name).read_text())
    }
    assert imported and imported <= FILES, imported - FILES


async def test_unknown_files_are_404_and_nothing_else_of_the_package_is_served(http: httpx.AsyncClient) -> None:
    for path in ("/console/static/nope.js", "/console/static/routes.py", "/console/static/..%2Froutes.py"):
        resp = await http.get(path)
        assert resp.status_code == 404, path
        assert resp.json()["code"] == "not_found"
        assert resp.headers["x-content-type-options"] == "nosniff"


def test_no_inline_script_no_inline_style_nothing_from_elsewhere() -> None:
    page = (STATIC / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert "<style" not in page and " style=" not in page and " on" + "click=" not in page
    for name in FILES | {"index.html"}:
        text = (STATIC / name).read_text()
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), f"{name} refers to {urls}"
        if name.endswith(".js") and name != "herald.min.js":
            assert ".innerHTML" not in text and "eval(" not in text, name


def test_the_gateway_url_and_the_trace_link() -> None:
    assert gateway_url(load_settings({}), "ops.example") == "ws://127.0.0.1:8080/ws"
    wildcard = load_settings({}, gateway_host="0.0.0.0", gateway_port=9000)
    assert gateway_url(wildcard, "ops.example") == "ws://ops.example:9000/ws"
    told = load_settings({}, console_gateway_url="wss://ws.example/socket")
    assert gateway_url(told, "x") == "wss://ws.example/socket"
    assert "connect-src 'self' wss://ws.example;" in content_security_policy("wss://ws.example/socket")
    proxied = load_settings({}, console_gateway_url="/ws")
    assert gateway_url(proxied, "x") == "/ws"
    assert "connect-src 'self';" in content_security_policy("/ws")
    assert trace_url(load_settings({}, console_trace_url="http://j:16686/trace/{traceId}")) == (
        "http://j:16686/trace/{traceId}"
    )
    # Tracing is off in the tests, so an OTLP endpoint alone gives no link.
    assert trace_url(load_settings({}), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}) == ""


def test_the_served_sdk_bundle_equals_a_fresh_build(tmp_path: Path) -> None:
    """The console serves a committed copy of dist/herald.min.js; rebuild and compare."""
    npm = shutil.which("npm")
    if npm is None or not (SDK / "node_modules" / "esbuild").exists():
        unavailable("console bundle NOT CHECKED: npm or clients/typescript/node_modules is missing (`make test`)")
    assert npm is not None
    build = subprocess.run([npm, "run", "build"], cwd=SDK, capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    fresh = (SDK / "dist" / "herald.min.js").read_bytes()
    served = (STATIC / "herald.min.js").read_bytes()
    assert served == fresh, (
        "services/api/src/herald_api/console/static/herald.min.js is stale: "
        "cp clients/typescript/dist/herald.min.js services/api/src/herald_api/console/static/"
    )
