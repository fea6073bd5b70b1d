"""The request class of the api: JSON bodies are measured before they are decoded."""

from __future__ import annotations

from typing import Any

from litestar import Request

from herald_common.jsondepth import check_json_depth


class HeraldRequest(Request[Any, Any, Any]):
    """Every JSON body the api decodes goes through :meth:`json`, so every REST edge that
    takes JSON refuses one nested more than ``MAX_JSON_DEPTH`` levels with ``bad_request``
    instead of letting the decoder run out of stack (a 500) or accepting a document that a
    reader with less stack to spare cannot decode later."""

    async def json(self) -> Any:
        check_json_depth(await self.body())
        return await super().json()
