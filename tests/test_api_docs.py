"""``/schema`` works offline: the documentation page loads nothing from another host, and every
asset it names is served by the API with the installed package's bytes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import pytest
from arbiter.services.api import create_app
from arbiter.services.api.docs import ASSETS
from litestar.testing import AsyncTestClient

_URL = re.compile(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""")


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(database_url, None)) as c:
        yield c


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
async def test_the_docs_page_loads_only_local_assets(
    client: AsyncTestClient[Any], path: str
) -> None:
    r = await client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "SwaggerUIBundle(" in page
    urls = _URL.findall(page)
    assert len(urls) == 4, urls  # favicon, css, bundle, preset
    assert "//" not in " ".join(urls), urls  # no scheme, no other host: same origin only
    static = resources.files("swagger_ui").joinpath("static")
    for url in urls:
        assert url.startswith("/schema/assets/"), url
        name = url.rsplit("/", 1)[1]
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].split(";")[0] == ASSETS[name]
        assert asset.content == static.joinpath(name).read_bytes()


async def test_only_the_named_assets_are_served(client: AsyncTestClient[Any]) -> None:
    for name in ("swagger-editor-bundle.js", "..%2F..%2Fcore.py", "index.css", "LICENSE"):
        r = await client.get(f"/schema/assets/{name}")
        assert r.status_code == 404, name
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200 and r.json()["openapi"].startswith("3.1")
