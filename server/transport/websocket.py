"""The WebSocket transport, on the ``websockets`` asyncio API (the default).

Outgoing frames are written straight to the socket: the frame goes through the
connection's sans-I/O protocol and its bytes into the transport's buffer, with
no task, queue or await per frame (phoenix: "encoded once and written directly
to sockets"). The transport's buffer is the bound: a client that lets it grow
past ``send_buffer_bytes`` is closed with 4009 rather than allowed to grow the
hub's memory or stall a fan-out.

The HTTP routes and the upgrade checks are shared with the picows transport
(http.py); here they are adapted to ``websockets``' ``process_request``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidState
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from clipwire.protocol import CloseCode

from ..hub import Hub
from .http import (
    CLOSE_TIMEOUT_S,
    MAX_QUEUE,
    SERVER_NAME,
    WS_PATH,
    HttpRequest,
    HttpResponse,
    HttpRoute,
    allowed_origins,
    choose_subprotocol,
    hub_routes,
    refuse_upgrade,
)

log = logging.getLogger("clipwire.transport")
_NO_HEADERS = Headers()  # shared by every open connection's spent handshake; never written


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

    @property
    def transport(self) -> asyncio.Transport:
        """The TCP transport underneath (its write buffer is what ``send`` bounds)."""
        return self._ws.transport

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


class WebsocketsServer:
    """``websockets``' server as the hub's :class:`~.http.TransportServer`."""

    def __init__(self, server: Server) -> None:
        self.server = server

    @property
    def port(self) -> int:
        return int(next(iter(self.server.sockets)).getsockname()[1])

    def stop_accepting(self) -> None:
        self.server.close(close_connections=False)

    async def wait_closed(self) -> None:
        await self.server.wait_closed()


def _respond(connection: ServerConnection, answer: HttpResponse) -> Response:
    """``answer`` as a ``websockets`` response (one Content-Type, one Content-Length)."""
    response = connection.respond(answer.status, "")
    for name in ("Content-Type", "Content-Length"):
        del response.headers[name]
    response.headers["Content-Type"] = answer.content_type
    response.headers["Content-Length"] = str(len(answer.body))
    for name, value in answer.headers:
        response.headers[name] = value
    response.body = answer.body
    return response


def _select_subprotocol(connection: ServerConnection,
                        offered: Sequence[Subprotocol]) -> Subprotocol | None:
    chosen = choose_subprotocol(offered)
    return Subprotocol(chosen) if chosen is not None else None


async def start_websocket_server(hub: Hub, host: str, port: int, *, reuse_port: bool = False,
                                 routes: HttpRoute | None = None) -> WebsocketsServer:
    """Listen on ``host:port``: WebSocket at ``/ws``, health at ``/healthz``, and ``routes``."""

    async def handler(ws: ServerConnection) -> None:
        # The handshake's headers are not needed once the connection is open: kept, they
        # were about a quarter of an idle connection's memory. (``ws.request`` itself must
        # stay: websockets reads "no request yet" from it being None.)
        for message in (ws.request, ws.response):
            if message is not None:
                message.headers = _NO_HEADERS
        conn = WebSocketConnection(ws, hub.config.send_buffer_bytes)
        try:
            await hub.serve(conn)
        except Exception:
            log.exception("connection from %s failed", conn.remote)
            conn.close(CloseCode.INTERNAL, "internal error")
        finally:
            await conn.finish()

    http = hub_routes(hub, routes)
    origins = allowed_origins(hub)

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        # websockets reads GET requests only; any other method is refused before this.
        asked = HttpRequest("GET", request.path, list(request.headers.raw_items()))
        if asked.path == WS_PATH:
            refused = refuse_upgrade(hub, origins, asked)
            return None if refused is None else _respond(connection, refused)
        return _respond(connection, await http(asked))

    config = hub.config
    server = await serve(
        handler,
        host,
        port,
        process_request=process_request,
        select_subprotocol=_select_subprotocol,
        max_size=config.max_frame_bytes,  # after decompression too: no compression bomb
        compression="deflate" if config.permessage_deflate else None,
        open_timeout=config.handshake_timeout_s,
        ping_interval=config.ping_interval_s,
        ping_timeout=config.ping_timeout_s,
        close_timeout=CLOSE_TIMEOUT_S,
        max_queue=MAX_QUEUE,
        server_header=SERVER_NAME,
        reuse_port=reuse_port,
    )
    return WebsocketsServer(server)


__all__ = ["WebSocketConnection", "WebsocketsServer", "start_websocket_server"]
