"""Headers every api response carries, whoever produced it (a handler, an error, the fast path).

``X-Content-Type-Options: nosniff`` keeps browsers from reading a JSON or text answer as
script or HTML; ``Referrer-Policy: no-referrer`` keeps URLs (topic names, user ids) out of
the requests a page of the api makes elsewhere. The console's pages add their own
Content-Security-Policy (:mod:`herald_api.console.routes`).
"""

from __future__ import annotations

from typing import Final

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

#: (name, value) pairs, lower-case names, as raw ASGI headers.
SECURITY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


async def add_security_headers(message: Message, scope: Scope) -> None:
    """Litestar ``before_send`` hook: the headers above on every response start (kept if already set)."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in SECURITY_HEADERS:
        key = name.decode()
        if key not in headers:
            headers[key] = value.decode()
