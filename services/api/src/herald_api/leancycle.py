"""The producer routes answered inside uvicorn's HTTP protocol: no ASGI exchange, one write.

Under uvicorn every request becomes a ``RequestResponseCycle``: an ASGI scope with
``receive`` and ``send`` callables, the application's coroutine between them, a check of
every response header against two regular expressions, and two socket writes (the head,
then the body). For the producer routes (:mod:`herald_api.fastpath`), whose answers are
small JSON bodies Herald builds itself, :class:`ProducerCycle` takes the cycle's place in
the protocol (:class:`herald_api.httphead.BoundedHeadProtocol` creates it): it gathers the
body, bounded by ``HERALD_MAX_BODY_BYTES``, runs :meth:`ProducerRoutes.answer
<herald_api.fastpath.ProducerRoutes.answer>`, and writes the status line, the headers and
the body in one ``write``.

It keeps what the protocol relies on a cycle for: keep-alive and ``Connection: close``,
HTTP/1.0, ``Expect: 100-continue``, pipelined requests (the protocol queues them and they
are answered in order), paused reading while a large body waits, write back-pressure, a
client that leaves before its answer (nothing is written; a publication it sent is still
stored), and graceful shutdown (an answer in progress is finished, then the connection
closes). The answer is the one the ASGI front end gives: same status, body and headers
(uvicorn's ``date`` included).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from litestar.types import Scope
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.server import ServerState

from herald_api.fastpath import JSON_HEADERS, Handler, ProducerRoutes
from herald_common.errors import ErrorCode, HeraldError

log = logging.getLogger(__name__)


_JSON_HEAD = b"".join(name + b": " + value + b"\r\n" for name, value in JSON_HEADERS)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _nothing() -> None:
    pass


class ProducerCycle:
    """One request to a producer route, from its head to its answer.

    The protocol calls :meth:`add_body` for each piece of the body, sets ``more_body``
    false and ``message_event`` when the request is complete, sets ``disconnected`` when
    the client leaves, ``keep_alive`` false when the server shuts down, and runs
    :meth:`run_asgi` as a task (at once, or after the answers of pipelined requests
    before it).
    """

    __slots__ = (
        "_expect_100_continue",
        "_flow",
        "_limit",
        "_route",
        "_routes",
        "_scope",
        "_server_state",
        "_transport",
        "body",
        "disconnected",
        "keep_alive",
        "message_event",
        "more_body",
        "on_response",
        "response_complete",
        "too_large",
    )

    def __init__(
        self,
        routes: ProducerRoutes,
        route: tuple[Handler, int],
        scope: Scope,
        transport: asyncio.Transport,
        flow: FlowControl,
        server_state: ServerState,
        *,
        keep_alive: bool,
        expect_100_continue: bool,
        on_response: Callable[[], None],
    ) -> None:
        self._routes = routes
        self._route = route
        self._scope = scope
        self._transport = transport
        self._flow = flow
        self._server_state = server_state
        self._limit = routes.settings.max_body_bytes
        self._expect_100_continue = expect_100_continue
        self.keep_alive = keep_alive
        self.on_response = on_response
        self.body = bytearray()
        self.more_body = True
        self.too_large = False
        self.disconnected = False
        self.response_complete = False
        self.message_event = asyncio.Event()

    def add_body(self, chunk: bytes) -> None:
        """A piece of the request body arrived; past the limit the body is dropped (413)."""
        if self.response_complete or self.too_large:
            return
        if len(self.body) + len(chunk) > self._limit:
            self.too_large = True
            self.body = bytearray()
        else:
            self.body += chunk
            if len(self.body) > HIGH_WATER_LIMIT:
                self._flow.pause_reading()
        self.message_event.set()

    async def _read_body(self) -> bytes:
        """The whole body, once it is in (what the ASGI front end's ``receive`` loop gives)."""
        if self._expect_100_continue and self.more_body and not self._transport.is_closing():
            self._transport.write(_CONTINUE)
        self._expect_100_continue = False
        while self.more_body and not self.too_large and not self.disconnected:
            self._flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()
        if self.disconnected:
            raise HeraldError(ErrorCode.BAD_REQUEST, "the client went away")
        if self.too_large:
            raise HeraldError(ErrorCode.TOO_LARGE, "request body is too large")
        return bytes(self.body)

    def _response(self, status: int, payload: bytes) -> bytes:
        parts = [STATUS_LINE[status]]
        for name, value in self._server_state.default_headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(_JSON_HEAD)
        parts.append(b"content-length: %d\r\n" % len(payload))
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", payload)
        return b"".join(parts)

    async def run_asgi(self, app: object) -> None:
        """Answer the request (``app`` is not used: the name and argument are the protocol's)."""
        started = time.perf_counter()
        scope = self._scope
        try:
            status, payload = await self._routes.answer(self._route, scope, self._read_body)
            if self._flow.write_paused and not self.disconnected:
                await self._flow.drain()
            if self.disconnected:
                return
            self._transport.write(self._response(status, payload))
            self.response_complete = True
            if not self.keep_alive:
                self._transport.close()
            self._routes.record(scope, "POST", scope["path"], status, started)
            self.on_response()
        except Exception:
            log.exception("answering a producer request failed")
            self._transport.close()
        finally:
            self.on_response = _nothing
