"""A minimal asyncio Socket.IO v5 / Engine.IO v4 client for the load generator.

The python-socketio client costs more CPU per message than the servers under
test, so the generator would measure itself. This one speaks only what the
benchmark needs: the websocket transport, the default namespace, JSON events
(no binary attachments), acks for our own calls, and Engine.IO ping answers.
Frames are handled as bytes and parsed with orjson, and sends skip UTF-8
re-encoding by writing orjson's bytes as text frames.

    client = await SocketIOClient.connect("http://127.0.0.1:3000", {"user": "alice"}, on_event)
    await client.emit("dm", {"to": "bob", "body": "hi"})
    assert await client.call("join", {"room": "r1"}) == "ok"
    await client.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

# Engine.IO packet types are the first byte; Socket.IO's follow a "4" (message).
_EIO_OPEN = ord("0")
_EIO_CLOSE = ord("1")
_EIO_PING = ord("2")
_EIO_MESSAGE = ord("4")
_SIO_CONNECT = ord("0")
_SIO_DISCONNECT = ord("1")
_SIO_EVENT = ord("2")
_SIO_ACK = ord("3")
_SIO_CONNECT_ERROR = ord("4")
_OPEN_BRACKET = ord("[")
_PONG = b"3"


class SocketIOConnectError(ConnectionError):
    """The server refused the Socket.IO CONNECT (a ``connect_error`` packet)."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.data = data


def engineio_url(url: str) -> str:
    """``http://host:port`` (or ws://, with an optional path) -> the websocket transport URL."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"unsupported URL scheme in {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/socket.io"):
        path += "/socket.io"
    return urlunsplit((scheme, parts.netloc, path + "/", "EIO=4&transport=websocket", ""))


def _split_ack(payload: bytes) -> tuple[int, bytes]:
    """``b"12[...]"`` -> ``(12, b"[...]")``: the ack id is the digits before the array."""
    bracket = payload.index(b"[")
    return int(payload[:bracket]), payload[bracket:]


class SocketIOClient:
    """One Socket.IO connection on the default namespace; events go to ``on_event(name, first_arg)``."""

    def __init__(self, ws: ClientConnection, on_event: Callable[[str, Any], None], sid: str) -> None:
        self._ws = ws
        self._on_event = on_event
        self.sid = sid
        self._next_ack = 0
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read(), name=f"sioclient-{sid}")

    @classmethod
    async def connect(
        cls,
        url: str,
        auth: dict[str, Any],
        on_event: Callable[[str, Any], None],
        *,
        timeout: float = 10.0,
    ) -> SocketIOClient:
        """Open the transport, send CONNECT with ``auth``, and return once the server accepts it."""
        ws = await ws_connect(
            engineio_url(url),
            compression=None,
            ping_interval=None,  # Engine.IO has its own heartbeat
            max_size=None,
            open_timeout=timeout,
            close_timeout=2,
        )
        try:
            async with asyncio.timeout(timeout):
                sid = await cls._handshake(ws, auth)
        except BaseException:
            await ws.close()
            raise
        return cls(ws, on_event, sid)

    @staticmethod
    async def _handshake(ws: ClientConnection, auth: dict[str, Any]) -> str:
        opened = False
        while True:
            try:
                frame = await ws.recv(decode=False)
            except ConnectionClosed as exc:
                raise ConnectionError(f"Socket.IO server closed the connection: {exc}") from exc
            if not frame:
                continue
            kind = frame[0]
            if kind == _EIO_OPEN and not opened:
                opened = True
                await ws.send(b"40" + orjson.dumps(auth), text=True)
            elif kind == _EIO_PING:
                await ws.send(_PONG, text=True)
            elif kind == _EIO_MESSAGE and len(frame) > 1:
                if frame[1] == _SIO_CONNECT:
                    return str(orjson.loads(frame[2:]).get("sid", ""))
                if frame[1] == _SIO_CONNECT_ERROR:
                    data = orjson.loads(frame[2:]) if len(frame) > 2 else None
                    message = data.get("message") if isinstance(data, dict) else data
                    raise SocketIOConnectError(f"connect_error: {message}", data)
            elif kind == _EIO_CLOSE:
                raise ConnectionError("Socket.IO server closed the session during the handshake")

    async def emit(self, event: str, data: Any) -> None:
        """Fire and forget: ``42["event",data]``."""
        await self._ws.send(b"42" + orjson.dumps((event, data)), text=True)

    async def call(self, event: str, data: Any, timeout: float = 10.0) -> Any:
        """Emit with an ack id and return the ack's first argument (``None`` if it had none)."""
        ack = self._next_ack
        self._next_ack = ack + 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack] = future
        try:
            await self._ws.send(b"42%d" % ack + orjson.dumps((event, data)), text=True)
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._acks.pop(ack, None)

    async def close(self) -> None:
        """Say DISCONNECT, close the transport, and stop the reader."""
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(b"41", text=True)
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    @property
    def closed(self) -> bool:
        """True once the reader has stopped (the transport is gone)."""
        return self._reader.done()

    async def _read(self) -> None:
        # The hot path: one recv per frame, a byte compare, one orjson.loads.
        ws = self._ws
        on_event = self._on_event
        try:
            while True:
                frame = await ws.recv(decode=False)
                if not frame:
                    continue
                kind = frame[0]
                if kind == _EIO_MESSAGE:
                    sio = frame[1]
                    if sio == _SIO_EVENT:
                        # Digits before "[" would be the server asking *us* for an ack;
                        # the benchmark's servers never do, so such an id is dropped.
                        start = 2 if frame[2] == _OPEN_BRACKET else frame.index(b"[", 2)
                        args = orjson.loads(memoryview(frame)[start:])
                        try:
                            on_event(args[0], args[1] if len(args) > 1 else None)
                        except Exception:
                            log.exception("on_event raised for %r", args[0])
                    elif sio == _SIO_ACK:
                        ack, payload = _split_ack(frame[2:])
                        future = self._acks.get(ack)
                        if future is not None and not future.done():
                            args = orjson.loads(payload)
                            future.set_result(args[0] if args else None)
                    elif sio == _SIO_DISCONNECT:
                        break
                elif kind == _EIO_PING:
                    await ws.send(_PONG, text=True)
                elif kind == _EIO_CLOSE:
                    break
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("Socket.IO reader stopped on a frame it could not read")
        finally:
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(ConnectionError("Socket.IO connection closed"))
            await ws.close()


__all__ = ["SocketIOClient", "SocketIOConnectError", "engineio_url"]
