"""A server span per HTTP request, continuing the caller's W3C trace context.

The span is current while the request is handled, so the events a handler records in the
outbox store its context (:mod:`herald_api.outbox`) and log lines written meanwhile carry
its ids. It is named ``<METHOD> <route template>`` once routing is known, never after the
raw path. With tracing off the middleware checks one flag and passes the request on.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.trace import SpanKind, StatusCode

from herald_api.errors import status_of
from herald_common import telemetry

_tracer = telemetry.tracer(__name__)


def _trace_headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in scope.get("headers", ()):
        name = key.decode("latin-1").lower()
        if name in telemetry.TRACE_HEADERS:
            found[name] = value.decode("latin-1")
    return found


def tracing_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if not telemetry.tracing_enabled or scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method = str(scope.get("method", "-"))
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with _tracer.start_as_current_span(
            method,
            context=telemetry.extract(_trace_headers(scope)),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await app(scope, receive, capture)
            except BaseException as exc:
                status = status_of(exc)
                raise
            finally:
                route = str(scope.get("path_template") or "unmatched")
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)

    return middleware
