"""The WebSocket transport, on the ``websockets`` asyncio API.

Outgoing frames are written straight to the socket: the frame goes through the
connection's sans-I/O protocol and its bytes into the transport's buffer, with
no task, queue or await per frame (phoenix: "encoded once and written directly
to sockets"). The transport's buffer is the bound: a client that lets it grow
past ``send_buffer_bytes`` is closed with 4009 rather than allowed to grow the
hub's memory or stall a fan-out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidState
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Origin, Subprotocol

from clipwire.protocol import SUBPROTOCOL, CloseCode

from ..hub import Hub

log = logging.getLogger("clipwire.transport")

WS_PATH = "/ws"
# Once the hub closes a connection (or a peer stops answering pings), how long it
# waits for the closing handshake before dropping the TCP connection.
CLOSE_TIMEOUT_S = 2.0
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"

# More HTTP routes on the hub's port (the web demo): the response, or None for "not mine".
HttpRoute = Callable[[ServerConnection, Request], Awaitable[Response | None]]


class WebSocketConnection:
    """A ``websockets`` connection adapted to the hub's ``Connection`` interface."""

    def __init__(self, ws: ServerConnection, max_buffered_bytes: int) -> None:
        self._ws = ws
        self._max_buffered_bytes = max_buffered_bytes
        self._close: tuple[int, str] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.ephemeral_dropped = 0

    @property
    def remote(self) -> str:
        address = self._ws.remote_address
        return f"{address[0]}:{address[1]}" if address else "?"

    def send(self, data: bytes, ephemeral: bool = False) -> None:
        ws = self._ws
        if self._close is not None or ws.protocol.state is not State.OPEN:
            return
        buffered = ws.transport.get_write_buffer_size()
        if ephemeral and buffered > self._max_buffered_bytes // 2:
            self.ephemeral_dropped += 1  # typing, presence, watch go first
            return
        if buffered > self._max_buffered_bytes:
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer: send buffer full, resume later")
            return
        try:
            ws.protocol.send_binary(data)
        except InvalidState:  # closing meanwhile
            return
        ws.send_data()

    def close(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            self._closer = asyncio.get_running_loop().create_task(self._ws.close(code, reason))

    async def __aiter__(self) -> AsyncIterator[bytes | str]:
        try:
            async for message in self._ws:
                yield message
        except ConnectionClosed:
            return

    async def finish(self) -> None:
        """Close (1000 unless a code was chosen) and wait for the close to complete."""
        self.close(CloseCode.NORMAL, "")
        if self._closer is not None:
            await self._closer


def _router(hub: Hub, extra: HttpRoute | None = None) -> HttpRoute:
    """HTTP on the WebSocket port: /healthz (alive), /readyz (store and broker), /metrics,
    then ``extra``'s routes."""

    async def route(connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == WS_PATH:
            if hub.connection_count >= hub.config.max_connections:
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE,
                                          "hub full: try another node or later\n")
            return None
        if path == HEALTH_PATH:
            return connection.respond(HTTPStatus.OK, "ok\n")
        if path == READY_PATH:
            ready, why = await hub.ready()
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            return connection.respond(status, why + "\n")
        if path == METRICS_PATH:
            return http_response(connection, HTTPStatus.OK, hub.metrics.render(),
                                 "text/plain; version=0.0.4; charset=utf-8")
        if extra is not None:
            response = await extra(connection, request)
            if response is not None:
                return response
        return connection.respond(HTTPStatus.NOT_FOUND, f"Clipwire serves WebSocket at {WS_PATH}\n")

    return route


def http_response(connection: ServerConnection, status: HTTPStatus, body: bytes, content_type: str,
                  headers: Sequence[tuple[str, str]] = ()) -> Response:
    """A response with ``body`` as ``content_type`` (one Content-Type, one Content-Length)."""
    response = connection.respond(status, "")
    for name in ("Content-Type", "Content-Length"):
        del response.headers[name]
    response.headers["Content-Type"] = content_type
    response.headers["Content-Length"] = str(len(body))
    for name, value in headers:
        response.headers[name] = value
    response.body = body
    return response


def _select_subprotocol(connection: ServerConnection,
                        offered: Sequence[Subprotocol]) -> Subprotocol | None:
    # Clients that offer nothing (browsers, simple tools) are served all the same.
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None


async def start_websocket_server(hub: Hub, host: str, port: int, *,
                                 reuse_port: bool = False, routes: HttpRoute | None = None) -> Server:
    """Listen on ``host:port``: WebSocket at ``/ws``, health at ``/healthz``, and ``routes``."""

    async def handler(ws: ServerConnection) -> None:
        conn = WebSocketConnection(ws, hub.config.send_buffer_bytes)
        try:
            await hub.serve(conn)
        except Exception:
            log.exception("connection from %s failed", conn.remote)
            conn.close(CloseCode.INTERNAL, "internal error")
        finally:
            await conn.finish()

    config = hub.config
    origins: list[Origin | None] | None = None
    if config.allowed_origins:
        # Browsers always send Origin; native apps and servers send none and are served.
        origins = [Origin(o.strip()) for o in config.allowed_origins.split(",") if o.strip()]
        origins.append(None)
    return await serve(
        handler,
        host,
        port,
        process_request=_router(hub, routes),
        select_subprotocol=_select_subprotocol,
        origins=origins,
        max_size=config.max_frame_bytes,  # after decompression too: no compression bomb
        compression="deflate" if config.permessage_deflate else None,
        open_timeout=config.handshake_timeout_s,
        ping_interval=config.ping_interval_s,
        ping_timeout=config.ping_timeout_s,
        close_timeout=CLOSE_TIMEOUT_S,
        max_queue=16,
        server_header="Clipwire",
        reuse_port=reuse_port,
    )


__all__ = ["HEALTH_PATH", "WS_PATH", "HttpRoute", "WebSocketConnection", "http_response",
           "start_websocket_server"]
