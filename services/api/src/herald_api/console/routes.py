"""Serving the console: its page at ``/console`` and its files at ``/console/static/<name>``.

Every file comes from ``static/`` beside this module (the TypeScript SDK's browser bundle
included, as ``herald.min.js``), so the console needs no internet access and no build
step. The page names the gateway and the trace viewer in ``<meta>`` tags (no inline
script); its Content-Security-Policy lets it load only the api's own files and connect
only to the api and that gateway.
"""

from __future__ import annotations

import functools
import html
import os
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from litestar import Request, Response, Router, get
from litestar.datastructures import State
from litestar.params import FromPath

from herald_common import telemetry
from herald_common.config import Settings
from herald_common.errors import ErrorCode, HeraldError

STATIC: Final = Path(__file__).parent / "static"

_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
#: Only these files of ``static/`` are served (the page itself is rendered, not served as is).
FILES: Final = frozenset(p.name for p in STATIC.iterdir() if p.suffix in _TYPES and p.name != "index.html")
# Short: the files change with every release of Herald and carry no version in their names.
_CACHE: Final = "no-cache"
_WILDCARD_HOSTS: Final = frozenset({"0.0.0.0", "::", ""})
JAEGER_UI_PORT: Final = 16686


def gateway_url(settings: Settings, request_host: str) -> str:
    """Where the browser reaches the gateway: HERALD_CONSOLE_GATEWAY_URL (a path such as ``/ws``
    means the page's own origin, behind a proxy), else the gateway's listener (the api's host
    name as the browser used it when the gateway listens on every address)."""
    if settings.console_gateway_url:
        return settings.console_gateway_url
    host = settings.gateway_host
    if host in _WILDCARD_HOSTS:
        host = request_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"ws://{host}:{settings.gateway_port}{settings.gateway_path}"


def trace_url(settings: Settings, environ: dict[str, str] | None = None) -> str:
    """The link to a trace, ``{traceId}`` standing for its id; empty: no links."""
    if settings.console_trace_url:
        return settings.console_trace_url
    env = os.environ if environ is None else environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""
    if not endpoint or not telemetry.tracing_enabled:
        return ""
    parts = urlsplit(endpoint)
    if not parts.hostname:
        return ""
    return f"{parts.scheme or 'http'}://{parts.hostname}:{JAEGER_UI_PORT}/trace/{{traceId}}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy(gateway: str) -> str:
    """No inline script or style, nothing from elsewhere, connections to the api and the gateway only
    (a gateway on the page's own origin is covered by ``'self'``)."""
    connect = " ".join(filter(None, ["'self'", _origin(gateway)]))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@functools.cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _page(gateway: str, trace: str) -> bytes:
    page = _read("index.html").decode()
    page = page.replace("{{gateway}}", html.escape(gateway, quote=True))
    return page.replace("{{trace}}", html.escape(trace, quote=True)).encode()


def _headers(gateway: str) -> dict[str, str]:
    return {"Content-Security-Policy": content_security_policy(gateway), "Cache-Control": _CACHE}


@get(["/", "/index.html"], include_in_schema=False, sync_to_thread=False)
def console_page(request: Request[Any, Any, State]) -> Response[bytes]:
    settings: Settings = request.app.state.settings
    gateway = gateway_url(settings, request.url.hostname or "127.0.0.1")
    return Response(_page(gateway, trace_url(settings)), media_type=_TYPES[".html"], headers=_headers(gateway))


@get("/static/{name:str}", include_in_schema=False, sync_to_thread=False)
def console_file(name: FromPath[str], request: Request[Any, Any, State]) -> Response[bytes]:
    """One of the console's files, or 404."""
    if name not in FILES:
        raise HeraldError(ErrorCode.NOT_FOUND, f"no such file {name[:64]!r}")
    settings: Settings = request.app.state.settings
    gateway = gateway_url(settings, request.url.hostname or "127.0.0.1")
    return Response(_read(name), media_type=_TYPES[Path(name).suffix], headers=_headers(gateway))


console_router = Router(path="/console", route_handlers=[console_page, console_file], include_in_schema=False)
