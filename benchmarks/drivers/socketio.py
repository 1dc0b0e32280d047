"""Socket.IO adapter (the Node and python-socketio peers).

By default it speaks Engine.IO v4 / Socket.IO v5 itself on FastWS, the same
transport the other adapters use, so every system is driven at the same cost
per message on the generator side. ``--sio-client peers`` uses the peers'
``SocketIOClient`` (websockets asyncio) instead. Neither server stores or
acknowledges messages, so ``errors`` is always 0 and loss shows as missing
deliveries.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from .base import CARD_TEXT, Nodes, OnBody
from .fastws import FastWS

_EVENT = b"42"


def engineio_url(url: str) -> str:
    """``http://host:port`` -> the websocket transport URL."""
    base = url.replace("https://", "wss://").replace("http://", "ws://").rstrip("/")
    if not base.endswith("/socket.io"):
        base += "/socket.io"
    return base + "/?EIO=4&transport=websocket"


class FastSocketIOConn:
    """One Socket.IO connection on the default namespace, over FastWS."""

    def __init__(self, user: str, on_body: OnBody) -> None:
        self.user = user
        self.on_body = on_body
        self.ws: FastWS | None = None
        self._next_ack = 0
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._auth = orjson.dumps({"user": user})

    @property
    def closed(self) -> bool:
        return self.ws is None or self.ws.closed

    @property
    def errors(self) -> int:
        return 0

    async def open(self, url: str, timeout: float) -> None:
        ws = await FastWS.connect(engineio_url(url), self._on_message, (), timeout, bind=self._bind)
        ws.done.add_done_callback(self._lost)
        await asyncio.wait_for(self._connected, timeout)

    def _bind(self, ws: FastWS) -> None:
        self.ws = ws

    def _lost(self, _: object) -> None:
        for future in [*self._acks.values(), self._connected]:
            if not future.done():
                future.set_exception(ConnectionError("Socket.IO connection closed"))

    def _on_message(self, frame: bytes, text: bool) -> None:
        assert self.ws is not None
        kind = frame[:1]
        if kind == b"4":  # Engine.IO message carrying a Socket.IO packet
            sio = frame[1:2]
            if sio == b"2":
                start = 2 if frame[2:3] == b"[" else frame.index(b"[", 2)
                args = orjson.loads(frame[start:])
                if args[0] == "msg":
                    self.on_body(args[1]["body"])
            elif sio == b"3":
                bracket = frame.index(b"[", 2)
                future = self._acks.pop(int(frame[2:bracket]), None)
                if future is not None and not future.done():
                    args = orjson.loads(frame[bracket:])
                    future.set_result(args[0] if args else None)
            elif sio == b"0" and not self._connected.done():
                self._connected.set_result(None)
            elif sio == b"4" and not self._connected.done():
                self._connected.set_exception(ConnectionError(f"connect_error: {frame[2:]!r}"))
        elif kind == b"2" and not self.ws.closing:  # Engine.IO ping
            self.ws.send(b"3", text=True)
        elif kind == b"0":  # Engine.IO open: connect to the default namespace with auth
            self.ws.send(b"40" + self._auth, text=True)

    def emit(self, event: str, data: Any) -> None:
        assert self.ws is not None
        self.ws.send(_EVENT + orjson.dumps((event, data)), text=True)

    async def call(self, event: str, data: Any, timeout: float) -> Any:
        assert self.ws is not None
        ack = self._next_ack
        self._next_ack += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack] = future
        try:
            self.ws.send(b"42%d" % ack + orjson.dumps((event, data)), text=True)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._acks.pop(ack, None)

    async def dm(self, to: str, body: str) -> None:
        self.emit("dm", {"to": to, "body": body})

    async def room(self, gid: str, body: str) -> None:
        self.emit("room", {"room": gid, "body": body})

    async def share(self, to: list[str], body: str) -> None:
        self.emit("share", {"to": to, "body": body + "|" + CARD_TEXT})

    async def close(self) -> None:
        if self.ws is not None:
            if not self.ws.closed:
                try:
                    self.ws.send(b"41", text=True)
                except ConnectionError:
                    pass
            await self.ws.close()


class PeersClientConn:
    """The same, on the peers' ``SocketIOClient`` (websockets asyncio)."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.client: Any = None

    @property
    def closed(self) -> bool:
        return self.client is None or bool(self.client.closed)

    @property
    def errors(self) -> int:
        return 0

    async def call(self, event: str, data: Any, timeout: float) -> Any:
        return await self.client.call(event, data, timeout=timeout)

    async def dm(self, to: str, body: str) -> None:
        await self.client.emit("dm", {"to": to, "body": body})

    async def room(self, gid: str, body: str) -> None:
        await self.client.emit("room", {"room": gid, "body": body})

    async def share(self, to: list[str], body: str) -> None:
        await self.client.emit("share", {"to": to, "body": body + "|" + CARD_TEXT})

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


class SocketIODriver:
    resumes = False

    def __init__(self, name: str, url: str, options: dict[str, Any]) -> None:
        self.name = name
        self.nodes = Nodes(url, options)
        self.timeout: float = options.get("timeout", 30.0)
        self.client: str = options.get("sio_client", "fast")

    async def connect(self, user: str, on_body: OnBody) -> Any:
        if self.client == "peers":
            from benchmarks.peers.sioclient import SocketIOClient

            peers_conn = PeersClientConn(user)

            def on_event(name: str, data: Any) -> None:
                if name == "msg":
                    on_body(data["body"])

            peers_conn.client = await SocketIOClient.connect(
                url=self.nodes.url_for(user), auth={"user": user}, on_event=on_event, timeout=self.timeout)
            return peers_conn
        conn = FastSocketIOConn(user, on_body)
        try:
            await conn.open(self.nodes.url_for(user), self.timeout)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def reconnect(self, old: Any, on_body: OnBody) -> Any:
        return await self.connect(old.user, on_body)

    async def create_group(self, owner: Any, room: str, members: list[str]) -> str:
        await self.join_group(owner, room)
        return room

    async def join_group(self, conn: Any, gid: str) -> None:
        answer = await conn.call("join", {"room": gid}, self.timeout)
        if answer != "ok":
            raise ConnectionError(f"join refused: {answer!r}")
