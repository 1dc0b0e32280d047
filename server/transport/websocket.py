"""The WebSocket transport, on the ``websockets`` asyncio API.

Each connection gets one writer task that drains a byte-bounded queue, so the
hub can ``send`` without waiting; a client whose queue overflows is closed with
4009 rather than allowed to grow the hub's memory or stall a fan-out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from clipwire.protocol import SUBPROTOCOL, CloseCode

from ..hub import Hub

log = logging.getLogger("clipwire.transport")

WS_PATH = "/ws"
HEALTH_PATH = "/healthz"


class WebSocketConnection:
    """A ``websockets`` connection adapted to the hub's ``Connection`` interface."""

    def __init__(self, ws: ServerConnection, max_queued_bytes: int) -> None:
        self._ws = ws
        self._max_queued_bytes = max_queued_bytes
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    @property
    def remote(self) -> str:
        address = self._ws.remote_address
        return f"{address[0]}:{address[1]}" if address else "?"

    def send(self, data: bytes) -> None:
        if self._close is not None:
            return
        self._queued_bytes += len(data)
        if self._queued_bytes > self._max_queued_bytes:
            self._drop(CloseCode.SLOW_CONSUMER, "slow consumer: send buffer full, resume later")
            return
        self._queue.append(data)
        self._wakeup.set()

    def close(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            self._wakeup.set()

    def _drop(self, code: int, reason: str) -> None:
        """Close a client that does not read: its writer may be stuck, so stop it first."""
        self._close = (code, reason)
        self._queue.clear()
        self._queued_bytes = 0
        self._writer.cancel()
        self._closer = asyncio.get_running_loop().create_task(self._ws.close(code, reason))

    async def __aiter__(self) -> AsyncIterator[bytes | str]:
        try:
            async for message in self._ws:
                yield message
        except ConnectionClosed:
            return

    async def finish(self) -> None:
        """Flush what is queued, close (1000 unless a code was chosen), and wait."""
        self.close(CloseCode.NORMAL, "")
        await asyncio.wait([self._writer])
        if self._closer is not None:
            await self._closer

    async def _write_loop(self) -> None:
        ws, queue = self._ws, self._queue
        try:
            while True:
                while queue:
                    data = queue.popleft()
                    self._queued_bytes -= len(data)
                    await ws.send(data)
                if self._close is not None:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
            code, reason = self._close
            await ws.close(code, reason)
        except ConnectionClosed:
            pass
        finally:
            queue.clear()
            self._queued_bytes = 0
            if self._close is None:
                self._close = (CloseCode.NORMAL, "")


def _route(connection: ServerConnection, request: Request) -> Response | None:
    path = urlsplit(request.path).path
    if path == HEALTH_PATH:
        return connection.respond(HTTPStatus.OK, "ok\n")
    if path != WS_PATH:
        return connection.respond(HTTPStatus.NOT_FOUND, f"Clipwire serves WebSocket at {WS_PATH}\n")
    return None


def _select_subprotocol(connection: ServerConnection,
                        offered: Sequence[Subprotocol]) -> Subprotocol | None:
    # Clients that offer nothing (browsers, simple tools) are served all the same.
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None


async def start_websocket_server(hub: Hub, host: str, port: int, *,
                                 reuse_port: bool = False) -> Server:
    """Listen on ``host:port``: WebSocket at ``/ws``, health at ``/healthz``."""

    async def handler(ws: ServerConnection) -> None:
        conn = WebSocketConnection(ws, hub.config.send_buffer_bytes)
        try:
            await hub.serve(conn)
        except Exception:
            log.exception("connection from %s failed", conn.remote)
            conn.close(CloseCode.INTERNAL, "internal error")
        finally:
            await conn.finish()

    return await serve(
        handler,
        host,
        port,
        process_request=_route,
        select_subprotocol=_select_subprotocol,
        max_size=hub.config.max_frame_bytes,
        compression=None,
        ping_interval=20,
        ping_timeout=20,
        max_queue=16,
        server_header="Clipwire",
        reuse_port=reuse_port,
    )


__all__ = ["HEALTH_PATH", "WS_PATH", "WebSocketConnection", "start_websocket_server"]
