"""The web demo that ``clipwire serve --demo`` serves on the hub's own port.

``GET /`` is a small chat app (``static/``: plain ES modules and CSS, and the
JavaScript client bundled into ``static/vendor/clipwire-client.js`` by
``scripts/build-demo-client``). Its routes exist only in demo mode; without
``--demo`` each of them answers 404 like any unknown path:

- ``GET /`` and ``GET /static/...``: the page and its files.
- ``GET /demo/token?user=NAME``: ``{"user", "token", "expires_at"}``, a token for
  *any* user, signed with the hub's own secret. This is what makes it a demo:
  a real application's backend decides who a user is.
- ``GET /demo/feed.json`` and ``GET /demo/thumbs/ID.svg``: the sample videos and
  their generated thumbnails (see ``feed.py``).

Only GET is served (the hub's transports read no request bodies), and the
files are read once, at start. The routes are transport-neutral (``HttpRequest``
in, ``HttpResponse`` out: see ``transport/http.py``), so either transport serves them.
"""

from __future__ import annotations

import json
import logging
import re
import time
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs

from ..auth import sign_token
from ..config import HubConfig
from ..transport.http import HttpRequest, HttpResponse
from .feed import FEED, thumbnail_svg

log = logging.getLogger("clipwire.demo")

STATIC_DIR = Path(__file__).parent / "static"
TOKEN_PATH = "/demo/token"
FEED_PATH = "/demo/feed.json"
TOKEN_TTL_S = 3600
# Demo names stay short and plain, so they read well in the page and in URLs.
DEMO_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
# The page loads nothing from elsewhere; it talks to this hub's /ws only.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
COMMON_HEADERS = (("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
                  ("Referrer-Policy", "no-referrer"))


class DemoSite:
    """The demo's HTTP routes, for a transport's ``routes=site.route``."""

    def __init__(self, config: HubConfig) -> None:
        if config.jwt_algorithm != "HS256" or not config.secret:
            raise ValueError("the demo signs HS256 tokens: it needs the hub's secret")
        self._secret = config.secret
        self._reserved = {config.system_user}
        self.files: dict[str, tuple[bytes, str]] = {}
        for path in sorted(STATIC_DIR.rglob("*")):
            content_type = CONTENT_TYPES.get(path.suffix)
            if path.is_file() and content_type is not None:
                self.files["/static/" + path.relative_to(STATIC_DIR).as_posix()] = (
                    path.read_bytes(), content_type)
        index = self.files.get("/static/index.html")
        if index is None:
            raise FileNotFoundError(f"the demo's page is missing: {STATIC_DIR / 'index.html'}")
        self.files["/"] = index
        for video in FEED:
            self.files[video.thumb_path] = (thumbnail_svg(video).encode(), "image/svg+xml")
        self.files[FEED_PATH] = (json.dumps([v.card() for v in FEED]).encode(), "application/json")
        where = "anyone who can reach the hub's port" if config.host not in (
            "127.0.0.1", "localhost", "::1") else "any local program"
        log.warning("demo mode: %s can sign in as any user through %s", where, TOKEN_PATH)

    async def route(self, request: HttpRequest) -> HttpResponse | None:
        """The demo's answer to ``request``, or None when the path is not the demo's."""
        path = request.path
        if path != TOKEN_PATH and path not in self.files:
            return None
        if request.method != "GET":
            return HttpResponse.text(HTTPStatus.METHOD_NOT_ALLOWED, "only GET here\n", (("Allow", "GET"),))
        if path == TOKEN_PATH:
            return self._token(request.query)
        body, content_type = self.files[path]
        headers: tuple[tuple[str, str], ...] = COMMON_HEADERS
        if content_type.startswith("text/html"):
            headers = (*headers, ("Content-Security-Policy", CSP))
        return HttpResponse(HTTPStatus.OK, body, content_type, headers)

    def _token(self, query: str) -> HttpResponse:
        users = parse_qs(query).get("user", [])
        user = users[0].strip() if len(users) == 1 else ""
        if not DEMO_USER.fullmatch(user) or user in self._reserved:
            return self._json(HTTPStatus.BAD_REQUEST, {
                "error": "give ?user=NAME: 1 to 32 letters, digits, '.', '_' or '-', starting "
                         "with a letter or digit"})
        token = sign_token(self._secret, user, ttl_s=TOKEN_TTL_S, name=user)
        expires_at = int((time.time() + TOKEN_TTL_S) * 1000)
        return self._json(HTTPStatus.OK, {"user": user, "token": token, "expires_at": expires_at})

    @staticmethod
    def _json(status: HTTPStatus, value: object) -> HttpResponse:
        return HttpResponse(status, json.dumps(value).encode(), "application/json",
                            (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")))


__all__ = ["FEED_PATH", "TOKEN_PATH", "DemoSite"]
