"""uvicorn's httptools protocol with a bound on the request head (431 past it).

httptools sets no limit of its own: it keeps collecting a header for as long as bytes
arrive, so one client could make the api hold megabytes per connection before any Herald
code runs. This protocol counts the request line and headers of each request and answers
431 (``{"code": "too_large", ...}``) and closes the connection once they exceed the limit.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._refused or self._over(self._head_bytes):
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()


def bounded_head_protocol(max_head_bytes: int) -> type[BoundedHeadProtocol]:
    """The protocol class for uvicorn's ``http=`` with the given limit."""
    return type("BoundedHeadProtocol", (BoundedHeadProtocol,), {"max_head_bytes": max_head_bytes})
