"""uvicorn's httptools protocol with a bound on the request head (431 past it).

httptools sets no limit of its own: it keeps collecting a header for as long as bytes
arrive, so one client could make the api hold megabytes per connection before any Herald
code runs. This protocol counts the request line and headers of each request and answers
431 (``{"code": "too_large", ...}``) and closes the connection once they exceed the limit.

It also hands requests to the producer routes to a :class:`~herald_api.leancycle.ProducerCycle`
instead of uvicorn's ASGI cycle, when it is given the app's
:class:`~herald_api.fastpath.ProducerRoutes`.
"""

from __future__ import annotations

from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from herald_api.fastpath import ProducerRoutes
from herald_api.leancycle import ProducerCycle

#: Bytes a header line costs beyond its name and value: ``": "`` and ``"\r\n"``.
_LINE_OVERHEAD = 4


def _response(limit: int) -> bytes:
    body = b'{"code":"too_large","message":"request headers exceed %d bytes"}' % limit
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\n"
        b"x-content-type-options: nosniff\r\n"
        b"referrer-policy: no-referrer\r\n"
        b"content-length: %d\r\n"
        b"connection: close\r\n\r\n" % len(body)
    ) + body


class BoundedHeadProtocol(HttpToolsProtocol):
    """Refuses a request whose request target and headers together exceed ``max_head_bytes``.

    Completed header lines are counted exactly; a head that is still arriving is bounded by
    the bytes received since it began, so an endless header is cut off as well.
    """

    max_head_bytes = 16384
    #: The producer routes answered by a :class:`ProducerCycle`; None: every request goes to the app.
    producer_routes: ProducerRoutes | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._waiting_bytes = 0
        self._in_head = False
        self._refused = False

    def _over(self, size: int) -> bool:
        if size <= self.max_head_bytes:
            return False
        self._refused = True
        self.transport.write(_response(self.max_head_bytes))
        self.transport.close()
        return True

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._in_head and not self._refused:
            self._waiting_bytes += len(data)
            self._over(self._waiting_bytes)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._waiting_bytes = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + _LINE_OVERHEAD
        # uvicorn's own handling (pinned), here rather than through a second call per header.
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._refused or self._over(self._head_bytes):
            return
        cycle = self._producer_cycle()
        if cycle is None:
            super().on_headers_complete()
            return
        # What uvicorn does with its own cycle: start it, or queue it behind the answer in progress.
        existing = self.cycle
        self.cycle = cast(Any, cycle)
        if existing is None or existing.response_complete:
            self._start_asgi_task(cast(Any, cycle), self.app)
        else:
            self.flow.pause_reading()
            self.pipeline.appendleft((cast(Any, cycle), self.app))

    def _producer_cycle(self) -> ProducerCycle | None:
        """A cycle for this request if a producer route answers it, else None (the app does)."""
        routes = self.producer_routes
        if routes is None or self.limit_concurrency is not None or self.parser.should_upgrade():
            return None
        if self.parser.get_method() != b"POST":
            return None
        url: bytes = self.url
        if b"?" in url or b"%" in url:
            return None  # uvicorn's cycle splits and decodes it
        path = url.decode("latin-1")
        route = routes.route("POST", path)
        if route is None:
            return None
        if routes.logs_access() and any(name == b"x-forwarded-for" for name, _ in self.headers):
            return None  # the access line's client comes from uvicorn's proxy-header handling
        http_version = self.parser.get_http_version()
        scope: Any = self.scope
        scope["method"] = "POST"
        scope["path"] = path
        scope["raw_path"] = url
        scope["query_string"] = b""
        if http_version != "1.1":
            scope["http_version"] = http_version
        return ProducerCycle(
            routes,
            route,
            scope,
            self.transport,
            self.flow,
            self.server_state,
            keep_alive=http_version != "1.0" and self.parser.should_keep_alive(),
            expect_100_continue=self.expect_100_continue,
            on_response=self.on_response_complete,
        )

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        cycle: Any = self.cycle
        if isinstance(cycle, ProducerCycle):
            cycle.add_body(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()


def bounded_head_protocol(
    max_head_bytes: int, producer_routes: ProducerRoutes | None = None
) -> type[BoundedHeadProtocol]:
    """The protocol class for uvicorn's ``http=`` with the given limit (and producer routes)."""
    attrs = {"max_head_bytes": max_head_bytes, "producer_routes": producer_routes}
    return type("BoundedHeadProtocol", (BoundedHeadProtocol,), attrs)
