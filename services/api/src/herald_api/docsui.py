"""The browsable API documentation under ``/schema``, served entirely by the api.

The page is Swagger UI from the pinned ``openapi-ui-bundles`` package: its script, style
sheet and icon are answered by the api itself, so the docs work without internet access,
always show the same version, and load nothing from anyone else (the validator badge,
which would send the document to an outside service, is off).
"""

from __future__ import annotations

import functools
import html
from typing import Any, Final

from litestar import Request, Response, Router, get
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath
from openapi_ui_bundles import swagger_ui

from herald_common.errors import ErrorCode, HeraldError

#: Where the UI's files are answered, under the schema router's path.
ASSETS = "/assets"

#: The files the page uses, and their media types; nothing else of the package is served.
_FILES: Final = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# A year: the package is pinned, so a file's content changes only with a new release of Herald.
_CACHE: Final = "public, max-age=31536000"


@get(f"{ASSETS}/{{name:str}}", include_in_schema=False, sync_to_thread=False)
def docs_asset(name: FromPath[str]) -> Response[bytes]:
    """One of the UI's files, or 404."""
    media_type = _FILES.get(name)
    if media_type is None:
        raise HeraldError(ErrorCode.NOT_FOUND, f"no such file {name[:64]!r}")
    return Response(_read(name), media_type=media_type, headers={"Cache-Control": _CACHE})


@functools.cache
def _read(name: str) -> bytes:
    # Only names from _FILES get here, so the cache holds three files at most.
    return (swagger_ui.static_path / name).read_bytes()


class SelfHostedSwagger(OpenAPIRenderPlugin):
    """Swagger UI whose files come from the api (see the module docstring)."""

    def __init__(self, schema_path: str = "/schema") -> None:
        self._assets = schema_path.rstrip("/") + ASSETS
        super().__init__(
            path=["/", "/swagger"],
            favicon=f"<link rel='icon' type='image/png' href='{self._assets}/favicon-32x32.png'>",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema.get("info", {}).get("title", "API")))
        spec_url = html.escape(self.get_openapi_json_route(request))
        page = f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{title}</title>
    {self.favicon}
    <link rel="stylesheet" href="{self._assets}/swagger-ui.css">
    {self.style}
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{self._assets}/swagger-ui-bundle.js"></script>
    <script>
      window.ui = SwaggerUIBundle({{
        url: "{spec_url}",
        dom_id: "#swagger-ui",
        deepLinking: true,
        validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
      }});
    </script>
  </body>
</html>
"""
        return page.encode()

    def receive_router(self, router: Router) -> None:
        router.register(docs_asset)
