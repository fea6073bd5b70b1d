"""A server span per HTTP request, continuing the caller's W3C trace context.

The span is current while the request is handled, so the events a handler records in the
outbox store its context (:mod:`herald_api.outbox`) and log lines written meanwhile carry
its ids. It is named ``<METHOD> <route template>`` once routing is known, never after the
raw path. With tracing off the middleware checks one flag and passes the request on.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.trace import Span, SpanKind, StatusCode

from herald_api.asgi import ResponseStatus, route_of
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


def trace_response(span: Span) -> bytes:
    """The ``traceresponse`` header value (W3C Trace Context level 2) naming ``span``."""
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}".encode()


def tracing_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if not telemetry.tracing_enabled or scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method = str(scope.get("method", "-"))
        span_of_request: list[Span] = []

        async def send_trace(message: Message) -> None:
            # The response names its trace, so a caller (the console) can link to it.
            if message["type"] == "http.response.start" and span_of_request:
                headers = list(message.get("headers", []))
                headers.append((b"traceresponse", trace_response(span_of_request[0])))
                message["headers"] = headers
            await send(message)

        respond = ResponseStatus(send_trace)

        with _tracer.start_as_current_span(
            method,
            context=telemetry.extract(_trace_headers(scope)),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            span_of_request.append(span)
            try:
                await app(scope, receive, respond)
            except BaseException as exc:
                respond.status = status_of(exc)
                raise
            finally:
                route = route_of(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", respond.status)
                if respond.status >= 500:
                    span.set_status(StatusCode.ERROR)

    return middleware
