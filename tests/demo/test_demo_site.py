"""The demo's HTTP routes: served only with --demo, a token endpoint that signs in
anyone, the sample feed, and a bundled client that matches clients/js/src."""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import json
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from xml.etree import ElementTree

import pytest
from wire import SECRET, HubFactory, RawClient

from clipwire.server import ClipwireServer, HubConfig
from clipwire.server.auth import TokenVerifier
from clipwire.server.config import ConfigError
from clipwire.server.demo import DemoSite

ROOT = Path(__file__).resolve().parents[2]


async def get(hub: ClipwireServer, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` on the hub's port: (status, headers, body), 4xx included."""

    def fetch() -> tuple[int, dict[str, str], bytes]:
        url = f"http://127.0.0.1:{hub.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, dict(error.headers), error.read()

    return await asyncio.to_thread(fetch)


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/demo/token?user=alice", "/demo/feed.json",
                                  "/demo/thumbs/sunset-ride.svg"])
async def test_without_demo_every_demo_route_is_404(hub_factory: HubFactory, path: str) -> None:
    hub = await hub_factory()
    status, _, body = await get(hub, path)
    assert status == 404
    assert b"token" not in body


async def test_the_token_endpoint_signs_in_any_user_in_demo_mode(hub_factory: HubFactory) -> None:
    hub = await hub_factory(demo=True, dm_policy="friends")
    status, headers, body = await get(hub, "/demo/token?user=alice")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    answer = json.loads(body)
    assert answer["user"] == "alice"
    identity = TokenVerifier("HS256", SECRET).verify(answer["token"])
    assert identity.user == "alice"
    assert answer["expires_at"] >= identity.expires_at * 1000 - 10_000
    client = await RawClient.open(hub.url)
    try:
        welcome = await client.hello(answer["token"])
        assert welcome["user"] == "alice"
    finally:
        await client.close()


@pytest.mark.parametrize("query", ["", "user=", "user=%20", "user=-x", "user=a%2Fb", "user=" + "x" * 33,
                                   "user=a&user=b", "user=system"])
async def test_the_token_endpoint_refuses_odd_names(hub_factory: HubFactory, query: str) -> None:
    hub = await hub_factory(demo=True)
    status, _, body = await get(hub, f"/demo/token?{query}")
    assert status == 400
    assert "token" not in json.loads(body)


async def test_the_page_its_files_and_the_feed(hub_factory: HubFactory) -> None:
    hub = await hub_factory(demo=True)
    status, headers, body = await get(hub, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert b'src="/static/app.js"' in body
    for path, kind in (("/static/app.js", "text/javascript"), ("/static/style.css", "text/css"),
                       ("/static/vendor/clipwire-client.js", "text/javascript")):
        status, headers, body = await get(hub, path)
        assert status == 200 and headers["Content-Type"].startswith(kind), path
    assert (await get(hub, "/static/../demo/__init__.py"))[0] == 404
    assert (await get(hub, "/static/nope.js"))[0] == 404

    status, _, body = await get(hub, "/demo/feed.json")
    feed = json.loads(body)
    assert 6 <= len(feed) <= 8
    for video in feed:
        assert video["url"].startswith("https://") and video["duration_ms"] > 0
        status, headers, svg = await get(hub, video["thumb"])
        assert status == 200 and headers["Content-Type"] == "image/svg+xml"
        assert ElementTree.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"


async def test_the_hub_still_serves_its_own_routes_in_demo_mode(hub_factory: HubFactory) -> None:
    hub = await hub_factory(demo=True)
    assert (await get(hub, "/healthz"))[:3:2] == (200, b"ok\n")
    status, headers, body = await get(hub, "/metrics")
    assert status == 200 and int(headers["Content-Length"]) == len(body) > 0
    assert (await get(hub, "/nothing-here"))[0] == 404


def test_demo_mode_needs_hs256_tokens(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("not used")
    with pytest.raises(ConfigError, match="CLIPWIRE_DEMO"):
        HubConfig(demo=True, jwt_algorithm="RS256", jwt_public_key_file=str(key)).check()
    with pytest.raises(ValueError, match="secret"):
        DemoSite(HubConfig(demo=True))


def _build_script() -> ModuleType:
    path = ROOT / "scripts" / "build-demo-client"
    loader = importlib.machinery.SourceFileLoader("build_demo_client", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_bundled_client_is_built_from_the_current_sources() -> None:
    """server/demo/static/vendor/clipwire-client.js is committed; it must follow clients/js/src."""
    script = _build_script()
    assert script.bundled_digest() == script.source_digest(), (
        "the demo's bundled client is out of date: run scripts/build-demo-client and commit the result")
