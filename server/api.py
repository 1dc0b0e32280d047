"""The server API: how the application's backend drives the hub over HTTP.

JSON on its own port (``--api-port``, default 8766), every call authenticated
by ``Authorization: Bearer <api key>`` (compared in constant time). Requests
that a client could also make (send, share, history, groups) are turned into
the very frame a client would send and served by the hub core through a
session of the acting user, so validation, guarantees and events are the same;
``as`` omitted means the system user, which is trusted: not held to
membership, the DM policy or blocks. ``GET /v1/openapi.json`` describes it all,
and is also the declaration the routes are built from and every call is checked
against (``api_schema.py``): a field or parameter it does not name is refused.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from clipwire.protocol import ErrorCode, Limits, RequestError, decode_any

from . import api_schema
from .openapi import document
from .session import Session
from .transport.http import METRICS_PATH

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
    # One per call: a retry is a new session, so a refusal must not hold the user's
    # tokens for it (they would never be claimed). The backend waits Retry-After.
    retries_here = False

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


def _refused(exc: RequestError) -> web.Response:
    """The error of a refused call; over a rate limit, when to try again (body and header)."""
    body: dict[str, Any] = {"error": str(exc.code), "message": exc.message}
    headers = {}
    if exc.retry_after_ms is not None:
        body["retry_after_ms"] = exc.retry_after_ms
        headers["Retry-After"] = str(math.ceil(exc.retry_after_ms / 1000))  # whole seconds
    return web.json_response(body, status=STATUS.get(exc.code, 400), headers=headers)


@dataclass(frozen=True, slots=True)
class Call:
    """One call's inputs, already checked against its operation: nothing undeclared."""

    body: dict[str, Any]
    query: dict[str, Any]
    path: dict[str, str]


Handler = Callable[[Call], Awaitable[dict[str, Any]]]
#: The metrics label of a request that matched no route (a bounded label set).
UNMATCHED = "unmatched"


class ServerApi:
    def __init__(self, hub: Hub, api_key: str) -> None:
        self.hub = hub
        self._key = api_key.encode()
        self._ids = itertools.count(1)
        self.app = web.Application(middlewares=[self._guard], client_max_size=1024 * 1024)
        self._document = document()
        handlers: dict[str, Handler] = {
            "send": self._send, "share": self._share, "group_create": self._group_create,
            "group_members": self._group_members, "friendships": self._friendships,
            "blocks": self._blocks, "disconnect": self._disconnect, "revoke": self._revoke,
            "presence": self._presence, "history": self._history,
            "video_unavailable": self._video_unavailable, "openapi": self._openapi,
        }
        # Every route comes from the document, so none is served undescribed or unchecked.
        self._public: set[str] = set()
        for path, operations in self._document["paths"].items():
            for method, operation in operations.items():
                handler = handlers.pop(operation["operationId"])
                self.app.router.add_route(method.upper(), path, self._endpoint(operation, handler))
                if operation.get("security") == []:
                    self._public.add(path)
        if handlers:
            raise RuntimeError(f"handlers missing from the API document: {sorted(handlers)}")
        # Prometheus text, not an API call (so not in the document). On this private port a
        # scraper needs no key: the API key sends as anyone, and no scraper should hold it.
        self.app.router.add_get(METRICS_PATH, self._metrics)
        self._public.add(METRICS_PATH)
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
        """Authenticate, turn refusals into error bodies, and count the call by route."""
        started = time.perf_counter()
        resource = request.match_info.route.resource
        # The route template, never the raw path: a label per user or conversation is unbounded.
        endpoint = resource.canonical if resource is not None else UNMATCHED
        status = 500
        try:
            response = await self._answer(request, handler, endpoint)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.hub.metrics.api_request(endpoint, status, time.perf_counter() - started)

    async def _answer(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                      endpoint: str) -> web.StreamResponse:
        if endpoint not in self._public:
            # The Bearer scheme is required (its name in any case, RFC 7235): a bare key in
            # the header is refused, so a key pasted where a token goes is never taken as one.
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if not hmac.compare_digest(given.encode(), self._key) or scheme.lower() != "bearer":
                return _error(401, "unauthorized", "missing or wrong API key (Authorization: Bearer ...)")
        try:
            return await handler(request)
        except RequestError as exc:
            return _refused(exc)
        except TimeoutError:
            return _error(503, "unavailable", "the hub did not answer in time")

    def _endpoint(self, operation: dict[str, Any], handler: Handler
                  ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """``handler`` behind the check of every input against ``operation``."""
        async def serve(request: web.Request) -> web.Response:
            path, query, body = api_schema.inputs(operation, request.match_info.items(),
                                                  list(request.query.items()), await request.read())
            return web.json_response(await handler(Call(body, query, path)))

        return serve

    def _actor(self, body: dict[str, Any]) -> tuple[_ApiSession, dict[str, Any]]:
        """Who a call acts as, and the rest of its body.

        ``as`` is held to that user's rules; only its absence means the trusted
        system user. The document made ``as`` a user id if present (never null).
        """
        fields = {k: v for k, v in body.items() if k != "as"}
        if "as" not in body:
            return _ApiSession(self.hub.config.system_user, trusted=True), fields
        if body["as"] in self.hub.config.reserved_users():
            # The system acts by leaving ``as`` out; named, it would be an untrusted user
            # sharing the system's conversations.
            raise RequestError.bad("'as' may not name an id the hub reserves; omit it to act "
                                   "as the system")
        return _ApiSession(body["as"], trusted=False), fields

    async def _call(self, session: _ApiSession, fields: dict[str, Any], t: str) -> dict[str, Any]:
        """Serve ``fields`` as request ``t`` of ``session``; the ok result, or raise its error."""
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        session.waiting[rid] = future
        await self.hub.dispatch(session, {**fields, "t": t, "id": rid})
        reply = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        if reply["t"] == "error":
            raise RequestError(ErrorCode(reply["code"]), reply["message"],
                               retry_after_ms=reply.get("retry_after_ms"))
        return {k: v for k, v in reply.items() if k not in ("t", "id")}

    # -- routes ---------------------------------------------------------------

    async def _send(self, call: Call) -> dict[str, Any]:
        return await self._call(*self._actor(call.body), t="send")

    async def _share(self, call: Call) -> dict[str, Any]:
        return await self._call(*self._actor(call.body), t="share")

    async def _group_create(self, call: Call) -> dict[str, Any]:
        return await self._call(*self._actor(call.body), t="group.create")

    async def _group_members(self, call: Call) -> dict[str, Any]:
        (actor, body), conv = self._actor(call.body), call.path["conv"]
        result: dict[str, Any] = {}
        if body.get("add"):  # ``refused``: as for a client, those the acting user may not add
            result = await self._call(actor, {"conv": conv, "members": body["add"]}, "group.add")
        if body.get("remove"):
            await self._call(actor, {"conv": conv, "members": body["remove"]}, "group.remove")
        return result

    @staticmethod
    def _pairs(body: dict[str, Any]) -> list[tuple[str, str]]:
        # The document checked the shape; what it cannot say is that a pair names two users.
        pairs = [(a, b) for a, b in body["pairs"]]
        if any(a == b for a, b in pairs):
            raise RequestError.bad("each pair must be two different user ids")
        return pairs

    async def _friendships(self, call: Call) -> dict[str, Any]:
        pairs = self._pairs(call.body)
        for a, b in pairs:
            await self.hub.social.set_friends(a, b, call.body["state"] == "friends")
        return {"pairs": len(pairs)}

    async def _blocks(self, call: Call) -> dict[str, Any]:
        pairs = self._pairs(call.body)
        for blocker, blocked in pairs:
            await self.hub.social.set_block(blocker, blocked, call.body["blocked"])
        return {"pairs": len(pairs)}

    # Only this node's count is known when the call returns: the other nodes close
    # their sessions when the broker's event arrives (or the revocation re-check runs).
    async def _disconnect(self, call: Call) -> dict[str, Any]:
        closed = self.hub.disconnect_user(call.path["user"])
        return {"closed_here": closed, "other_nodes_told": self.hub.cluster is not None}

    async def _revoke(self, call: Call) -> dict[str, Any]:
        before = call.body.get("before_ms", self.hub.now_ms())
        closed = await self.hub.revoke(call.path["user"], before)
        return {"closed_here": closed, "other_nodes_told": self.hub.cluster is not None,
                "before_ms": before}

    async def _presence(self, call: Call) -> dict[str, Any]:
        users = [u for u in call.query["users"].split(",") if u][:1000]
        if not users:
            raise RequestError.bad("give ?users=a,b,c")
        online = await self.hub.presence.online(users)
        seen = await self.hub.store.last_seen(users)
        return {"users": [
            {"user": u, "online": u in online, "last_seen": seen.get(u)} for u in users]}

    async def _history(self, call: Call) -> dict[str, Any]:
        actor = _ApiSession(self.hub.config.system_user, trusted=True)
        return await self._call(actor, {"conv": call.path["conv"], **call.query}, "history")

    async def _video_unavailable(self, call: Call) -> dict[str, Any]:
        return {"tombstoned": await self.hub.video_unavailable(call.path["video"])}

    async def _metrics(self, request: web.Request) -> web.Response:
        if request.query:
            raise RequestError.bad(f"unknown parameter '{next(iter(request.query))}'")
        return web.Response(body=self.hub.metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _openapi(self, call: Call) -> dict[str, Any]:
        return self._document
