"""The producer routes without litestar's per-request machinery.

``POST /api/publish`` (and ``/batch``) and ``POST /api/messages`` are what producers call
thousands of times a second, and litestar's generic request handling (its app and router
layers, a ``Request`` object, guards, dependency resolution in task groups, signature
models, response objects) cost several times the work the route itself does. Here, in
front of litestar, the same steps run as plain calls: the same token check and cache
(:func:`herald_api.auth.verified_claims`), the same rate limit
(:func:`herald_api.ratelimit.check_write_rate`), the same body and depth limits, the same
msgspec schemas, the same service methods, the same error bodies, the same metrics and
access lines (:func:`herald_api.metrics.record_request`). Every other request goes to
litestar. Litestar's handlers of these routes stay the documented reference (OpenAPI) and
the tests run against both.

:class:`ProducerRoutes` is that work; it has two front ends: :func:`producer_routes`, an
ASGI application, and, under uvicorn, :mod:`herald_api.leancycle`, which answers these
routes inside the HTTP protocol without the ASGI exchange.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Litestar
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from herald_api.auth import CLAIMS_KEY, parse_bearer, verified_claims
from herald_api.domain.messages.schemas import CreateMessage, message_resource
from herald_api.domain.messages.services import MessageService
from herald_api.domain.publish.schemas import BatchAccepted, BatchRequest, PublishAccepted, PublishRequest
from herald_api.domain.publish.services import PublishService
from herald_api.errors import ErrorBody
from herald_api.metrics import access_log, record_request
from herald_api.ratelimit import check_write_rate
from herald_api.secheaders import SECURITY_HEADERS
from herald_common import telemetry
from herald_common.config import Settings
from herald_common.errors import ErrorCode, HeraldError
from herald_common.jsondepth import check_json_depth
from herald_common.tokens import Claims

log = logging.getLogger(__name__)

Handler = Callable[[State, Claims, bytes], Awaitable[msgspec.Struct]]

_encoder = msgspec.json.Encoder()
_publish_decoder = msgspec.json.Decoder(PublishRequest)
_batch_decoder = msgspec.json.Decoder(BatchRequest)
_message_decoder = msgspec.json.Decoder(CreateMessage)
#: The headers of every answer here but its length.
JSON_HEADERS = [(b"content-type", b"application/json"), *SECURITY_HEADERS]


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    check_json_depth(body)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise HeraldError(ErrorCode.BAD_REQUEST, f"invalid request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise HeraldError(ErrorCode.BAD_REQUEST, f"invalid request: body is not JSON ({exc})") from None


async def _send_message(state: State, claims: Claims, body: bytes) -> msgspec.Struct:
    data: CreateMessage = _decode(_message_decoder, body)
    service: MessageService = state.message_service
    return message_resource(await service.create(claims, data.content, data.recipient_id, data.channel_id))


async def _publish(state: State, claims: Claims, body: bytes) -> msgspec.Struct:
    data: PublishRequest = _decode(_publish_decoder, body)
    service: PublishService = state.publish_service
    return PublishAccepted(event_id=await service.publish(claims, data.topic, data.data, data.idempotency_key))


async def _publish_batch(state: State, claims: Claims, body: bytes) -> msgspec.Struct:
    data: BatchRequest = _decode(_batch_decoder, body)
    service: PublishService = state.publish_service
    return BatchAccepted(event_ids=await service.publish_batch(claims, data.items))


#: (method, path) → handler and its success status.
ROUTES: dict[tuple[str, str], tuple[Handler, int]] = {
    ("POST", "/api/publish"): (_publish, 202),
    ("POST", "/api/publish/batch"): (_publish_batch, 202),
    ("POST", "/api/messages"): (_send_message, 201),
}


BodyReader = Callable[[], Awaitable[bytes]]


class ProducerRoutes:
    """The routes of :data:`ROUTES` on one app, answered without litestar.

    Two front ends use it: :func:`producer_routes` (an ASGI application) and, when the api
    runs under uvicorn, :class:`herald_api.leancycle.ProducerCycle`, which answers these
    routes inside the HTTP protocol itself. Litestar serves them instead when the app was
    built with ``fast_paths=False``, while tracing is on (its request spans) and when CORS
    is configured (its CORS headers).
    """

    def __init__(self, app: Litestar) -> None:
        self.state = app.state
        self.settings: Settings = self.state.settings
        self.enabled = bool(self.state.fast_paths) and not self.settings.cors_origins

    def route(self, method: str, path: str) -> tuple[Handler, int] | None:
        """The handler and success status for a request, or None when litestar answers it."""
        if not self.enabled or telemetry.tracing_enabled:
            return None
        return ROUTES.get((method, path))

    def logs_access(self) -> bool:
        """Whether each request's access line is written (HERALD_ACCESS_LOG and the log level)."""
        return self.settings.access_log and access_log.isEnabledFor(logging.INFO)

    async def answer(self, route: tuple[Handler, int], scope: Scope, read_body: BodyReader) -> tuple[int, bytes]:
        """The status and JSON body of the answer; errors become their error bodies."""
        handler, status = route
        state = self.state
        try:
            token = parse_bearer(_header(scope, b"authorization"))
            claims = await verified_claims(state.verified_tokens, state.verifier, token)
            # Where litestar's guard keeps them, for the access line.
            scope.setdefault("state", {})[CLAIMS_KEY] = claims
            check_write_rate(state, token, claims)
            body = await read_body()
            return status, _encoder.encode(await handler(state, claims, body))
        except HeraldError as exc:
            return exc.code.http_status, _encoder.encode(ErrorBody(code=exc.code.value, message=exc.message))
        except Exception:
            log.exception("unhandled error")
            return 500, _encoder.encode(ErrorBody(code=ErrorCode.INTERNAL.value, message="internal error"))

    def record(self, scope: Scope, method: str, path: str, status: int, started: float) -> None:
        """Count and time the request (and write its access line), as litestar's routes are."""
        record_request(self.state, scope, method, path, status, started)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HeraldError(ErrorCode.BAD_REQUEST, "the client went away")
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]  # an http.request message
        size += len(chunk)
        if size > limit:
            raise HeraldError(ErrorCode.TOO_LARGE, "request body is too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def producer_routes(app: Litestar) -> ASGIApp:
    """The api's ASGI application: :data:`ROUTES` answered here, everything else by ``app``."""
    routes = ProducerRoutes(app)
    limit = routes.settings.max_body_bytes

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        method = ""
        if scope["type"] == ScopeType.HTTP:
            method = scope["method"]
            route = routes.route(method, scope["path"])
        if route is None:
            await app(scope, receive, send)
            return
        started = time.perf_counter()

        async def read_body() -> bytes:
            return await _read_body(receive, limit)

        status, payload = await routes.answer(route, scope, read_body)
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": status,
            "headers": [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
        }
        await send(start)
        end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": payload, "more_body": False}
        await send(end)
        routes.record(scope, method, scope["path"], status, started)

    return asgi
