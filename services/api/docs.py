"""The API's own documentation page at ``/schema``, served with no internet.

Litestar's render plugins load their JavaScript, CSS, favicon and fonts from public CDNs, so on a
machine without internet (the embedded default runs anywhere) ``/schema`` was a blank page. Here
the Swagger UI page takes every asset from the installed ``swagger-ui-py`` package (the Swagger UI
distribution, 5.x, which reads the OpenAPI 3.1 documents Litestar writes), served by this app at
``/schema/assets/``; the page itself names no other host. ``/schema`` and ``/schema/swagger``
render it; ``/schema/openapi.json`` (and ``.yaml``) stay as Litestar serves them.

Why swagger-ui-py: it is the maintained wheel that carries the Swagger UI files themselves (the
other packages that do either pin Swagger UI 4, which cannot read OpenAPI 3.1, or pull in Django
or FastAPI). Only the four files the page loads are served, not the package's whole folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from litestar import Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import FromPath
from litestar.response import File

__all__ = ["ASSETS", "assets_router", "swagger_plugin"]

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
"""The files the page loads, by name, with their media types."""


def _static() -> Path:
    """The folder of the installed Swagger UI distribution."""
    return Path(str(resources.files("swagger_ui").joinpath("static")))


def swagger_plugin(openapi_path: str) -> SwaggerRenderPlugin:
    """Swagger UI at ``openapi_path`` and ``openapi_path/swagger``, every asset local."""
    base = f"{openapi_path}/assets"
    return SwaggerRenderPlugin(
        js_url=f"{base}/swagger-ui-bundle.js",
        css_url=f"{base}/swagger-ui.css",
        standalone_preset_js_url=f"{base}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{base}/favicon-32x32.png'>",
        path=["/", "/swagger"],
    )


def assets_router(openapi_path: str) -> Router:
    """The route that serves :data:`ASSETS` (any other name is a 404), cacheable for a day:
    they change only with the installed package."""
    folder = _static()

    @get("/{name:str}", include_in_schema=False, cache=False)
    async def asset(name: FromPath[str]) -> File:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFoundException(f"no documentation asset {name!r}")
        return File(
            folder / name,
            media_type=media_type,
            content_disposition_type="inline",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return Router(path=f"{openapi_path}/assets", route_handlers=[asset])
