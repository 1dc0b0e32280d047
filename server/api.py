"""The server API: how the application's backend drives the hub over HTTP.

JSON on its own port (``--api-port``, default 8766), every call authenticated
by ``Authorization: Bearer <api key>`` (compared in constant time). Requests
that a client could also make (send, share, history, groups) are turned into
the very frame a client would send and served by the hub core through a
session of the acting user, so validation, guarantees and events are the same;
``as`` omitted means the system user, which is trusted: not held to
membership, the DM policy or blocks. ``GET /v1/openapi.json`` describes it all.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from clipwire.protocol import ErrorCode, Limits, RequestError, decode_any

from .session import Session

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("clipwire.api")

STATUS = {
    ErrorCode.BAD_REQUEST: 400, ErrorCode.UNAUTHORIZED: 401, ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404, ErrorCode.CONFLICT: 409, ErrorCode.TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429, ErrorCode.INTERNAL: 500, ErrorCode.UNAVAILABLE: 503,
}
CALL_TIMEOUT_S = 10.0
# The hub's own replies are trusted; only the sizes need room.
_OWN_FRAMES = Limits(max_frame_bytes=64 * 1024 * 1024, max_depth=16, max_str_len=1 << 24,
                     max_bin_len=1 << 24, max_array_len=1 << 20, max_map_len=1 << 20)
MAX_PAIRS = 10_000


class _NoSocket:
    """The connection of an API session: replies are caught, events are not needed."""

    remote = "server-api"

    def send(self, data: bytes, ephemeral: bool = False) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        pass

    def __aiter__(self) -> Any:
        raise TypeError("an API session has no incoming frames")


class _ApiSession(Session):
    """A session of the acting user whose replies resolve futures instead of going out."""

    __slots__ = ("waiting",)

    def __init__(self, user: str, trusted: bool) -> None:
        super().__init__(_NoSocket(), user, None, "server-api", 0)
        self.trusted = trusted
        self.release()
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}

    def reply(self, frame: dict[str, Any]) -> None:
        future = self.waiting.pop(frame.get("id", -1), None)
        if future is not None and not future.done():
            future.set_result(frame)

    def push_now(self, data: bytes) -> None:
        # Replies the hub encoded itself (a history page it had to measure).
        frame = decode_any(data, _OWN_FRAMES)
        if isinstance(frame, dict):
            self.reply(frame)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


class ServerApi:
    def __init__(self, hub: Hub, api_key: str) -> None:
        self.hub = hub
        self._key = api_key.encode()
        self._ids = itertools.count(1)
        self.app = web.Application(middlewares=[self._guard], client_max_size=1024 * 1024)
        routes = [
            web.post("/v1/messages", self._send), web.post("/v1/shares", self._share),
            web.post("/v1/groups", self._group_create),
            web.post("/v1/groups/{conv}/members", self._group_members),
            web.put("/v1/friendships", self._friendships), web.put("/v1/blocks", self._blocks),
            web.post("/v1/users/{user}/disconnect", self._disconnect),
            web.post("/v1/users/{user}/revoke", self._revoke),
            web.get("/v1/presence", self._presence),
            web.get("/v1/conversations/{conv}/messages", self._history),
            web.post("/v1/videos/{video}/unavailable", self._video_unavailable),
            web.get("/v1/openapi.json", self._openapi),
        ]
        self.app.add_routes(routes)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or ()
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("server API on http://%s:%d/v1/", host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- plumbing -------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        if request.path != "/v1/openapi.json":
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").encode()
            if not hmac.compare_digest(given, self._key):
                return _error(401, "unauthorized", "missing or wrong API key (Authorization: Bearer ...)")
        try:
            return await handler(request)
        except RequestError as exc:
            return _error(STATUS.get(exc.code, 400), str(exc.code), exc.message)
        except web.HTTPException:
            raise
        except TimeoutError:
            return _error(503, "unavailable", "the hub did not answer in time")

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise RequestError.bad("the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise RequestError.bad("the body must be a JSON object")
        return body

    def _actor(self, body: dict[str, Any]) -> _ApiSession:
        user = body.pop("as", None)
        if user is None:
            return _ApiSession(self.hub.config.system_user, trusted=True)
        if not isinstance(user, str) or not user:
            raise RequestError.bad("'as' must be a user id")
        return _ApiSession(user, trusted=False)

    async def _call(self, session: _ApiSession, t: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Serve ``fields`` as request ``t`` of ``session``; the ok result, or raise its error."""
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        session.waiting[rid] = future
        await self.hub.dispatch(session, {**fields, "t": t, "id": rid})
        reply = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        if reply["t"] == "error":
            raise RequestError(ErrorCode(reply["code"]), reply["message"])
        return {k: v for k, v in reply.items() if k not in ("t", "id")}

    # -- routes ---------------------------------------------------------------

    async def _send(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return web.json_response(await self._call(self._actor(body), "send", body))

    async def _share(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return web.json_response(await self._call(self._actor(body), "share", body))

    async def _group_create(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return web.json_response(await self._call(self._actor(body), "group.create", body))

    async def _group_members(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        actor = self._actor(body)
        conv = request.match_info["conv"]
        if body.get("add"):
            await self._call(actor, "group.add", {"conv": conv, "members": body["add"]})
        if body.get("remove"):
            await self._call(actor, "group.remove", {"conv": conv, "members": body["remove"]})
        return web.json_response({})

    def _pairs(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        pairs = body.get("pairs")
        if not isinstance(pairs, list) or len(pairs) > MAX_PAIRS:
            raise RequestError.bad(f"'pairs' must be a list of at most {MAX_PAIRS} [a, b] pairs")
        out = []
        for pair in pairs:
            if (not isinstance(pair, list) or len(pair) != 2
                    or not all(isinstance(u, str) and u for u in pair) or pair[0] == pair[1]):
                raise RequestError.bad("each pair must be two different user ids")
            out.append((pair[0], pair[1]))
        return out

    async def _friendships(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        state = body.get("state")
        if state not in ("friends", "none"):
            raise RequestError.bad("'state' must be 'friends' or 'none'")
        pairs = self._pairs(body)
        for a, b in pairs:
            await self.hub.social.set_friends(a, b, state == "friends")
        return web.json_response({"pairs": len(pairs)})

    async def _blocks(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body.get("blocked"), bool):
            raise RequestError.bad("'blocked' must be true or false")
        pairs = self._pairs(body)
        for blocker, blocked in pairs:
            await self.hub.social.set_block(blocker, blocked, body["blocked"])
        return web.json_response({"pairs": len(pairs)})

    async def _disconnect(self, request: web.Request) -> web.Response:
        return web.json_response({"closed": self.hub.disconnect_user(request.match_info["user"])})

    async def _revoke(self, request: web.Request) -> web.Response:
        body = await self._body(request) if request.can_read_body else {}
        before = body.get("before_ms", self.hub.now_ms())
        if isinstance(before, bool) or not isinstance(before, int) or before < 0:
            raise RequestError.bad("'before_ms' must be a time in milliseconds")
        closed = await self.hub.revoke(request.match_info["user"], before)
        return web.json_response({"closed": closed, "before_ms": before})

    async def _presence(self, request: web.Request) -> web.Response:
        users = [u for u in request.query.get("users", "").split(",") if u][:1000]
        if not users:
            raise RequestError.bad("give ?users=a,b,c")
        online = await self.hub.presence.online(users)
        seen = await self.hub.store.last_seen(users)
        return web.json_response({"users": [
            {"user": u, "online": u in online, "last_seen": seen.get(u)} for u in users]})

    async def _history(self, request: web.Request) -> web.Response:
        fields: dict[str, Any] = {"conv": request.match_info["conv"]}
        for name in ("before", "limit"):
            if name in request.query:
                try:
                    fields[name] = int(request.query[name])
                except ValueError:
                    raise RequestError.bad(f"'{name}' must be an integer") from None
        actor = _ApiSession(self.hub.config.system_user, trusted=True)
        return web.json_response(await self._call(actor, "history", fields))

    async def _video_unavailable(self, request: web.Request) -> web.Response:
        count = await self.hub.video_unavailable(request.match_info["video"])
        return web.json_response({"tombstoned": count})

    async def _openapi(self, request: web.Request) -> web.Response:
        from .openapi import document

        return web.json_response(document())
