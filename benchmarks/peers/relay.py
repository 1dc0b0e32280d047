"""The Python floor: a bare msgpack-over-WebSocket relay with nothing but routing.

No auth, no store, no acknowledgement of messages, no per-connection queue: it
shows what the ``websockets`` asyncio stack on uvloop costs by itself, so the
gap between it and Clipwire is what Clipwire's guarantees cost.

    python -m benchmarks.peers.relay --port 0      # prints "READY <port>"

Wire (binary msgpack maps at ``/ws``):
    {"t":"hello","user":U}                 -> {"t":"ok"}
    {"t":"dm","to":U,"body":S}             -> {"t":"msg","from":SENDER,"body":S} to every connection of U
    {"t":"join","id":N,"room":R}           -> {"t":"ok","id":N}
    {"t":"room","room":R,"body":S}         -> {"t":"msg","from":SENDER,"room":R,"body":S}
                                              to every member connection but the sender
    {"t":"share","to":[U,...],"body":S}    -> {"t":"msg","from":SENDER,"body":S} to each U's connections

Each fan-out is encoded once and written with ``websockets.broadcast``, which
does not wait for slow readers (no backpressure): the load generator bounds
what it sends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import msgpack
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

WS_PATH = "/ws"
_OK = msgpack.packb({"t": "ok"})
_packb = msgpack.Packer().pack  # reused: packb would build a Packer per frame
_unpackb = msgpack.unpackb


def _id(value: Any) -> str | None:
    """Ids are strings; numbers are accepted as their decimal text."""
    if type(value) is str:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


class Relay:
    """Who is connected as whom, and who is in which room: the whole state."""

    def __init__(self) -> None:
        self.users: dict[str, set[ServerConnection]] = {}
        self.rooms: dict[str, set[ServerConnection]] = {}

    async def handler(self, ws: ServerConnection) -> None:
        """Serve one connection: hello first, then route every frame."""
        try:
            user = await self._hello(ws)
        except ConnectionClosed:
            return
        if user is None:
            await ws.close(1008, "first frame must be hello with a user")
            return
        conns = self.users.setdefault(user, set())
        conns.add(ws)
        joined: set[str] = set()
        users, rooms = self.users, self.rooms
        try:
            await ws.send(_OK)
            async for frame in ws:
                try:
                    m = _unpackb(frame)
                    t = m["t"]
                except Exception:
                    continue  # not a msgpack map with "t": ignore, like any unknown frame
                if t == "dm":
                    to = _id(m.get("to"))
                    targets = users.get(to) if to is not None else None
                    if targets:
                        broadcast(targets, _packb({"t": "msg", "from": user, "body": m.get("body")}))
                elif t == "room":
                    room = _id(m.get("room"))
                    members = rooms.get(room) if room is not None else None
                    if members and (len(members) > 1 or ws not in members):
                        frame_out = _packb({"t": "msg", "from": user, "room": room, "body": m.get("body")})
                        broadcast([c for c in members if c is not ws], frame_out)
                elif t == "share":
                    recipients = self._share_targets(m.get("to"))
                    if recipients:
                        broadcast(recipients, _packb({"t": "msg", "from": user, "body": m.get("body")}))
                elif t == "join":
                    room = _id(m.get("room"))
                    if room is not None:
                        rooms.setdefault(room, set()).add(ws)
                        joined.add(room)
                        await ws.send(_packb({"t": "ok", "id": m.get("id")}))
                    else:
                        await ws.send(_packb({"t": "error", "id": m.get("id"), "code": "bad_room"}))
        except ConnectionClosed:
            pass
        finally:
            conns.discard(ws)
            if not conns and users.get(user) is conns:
                del users[user]
            for room in joined:
                members = rooms.get(room)
                if members is not None:
                    members.discard(ws)
                    if not members:
                        del rooms[room]

    async def _hello(self, ws: ServerConnection) -> str | None:
        frame = await ws.recv()
        if not isinstance(frame, bytes):
            return None
        try:
            m = _unpackb(frame)
        except Exception:
            return None
        if not isinstance(m, dict) or m.get("t") != "hello":
            return None
        return _id(m.get("user"))

    def _share_targets(self, to: Any) -> Iterable[ServerConnection]:
        if not isinstance(to, list):
            return ()
        users = self.users
        if len(to) == 1:
            one = _id(to[0])
            return users.get(one, ()) if one is not None else ()
        targets: set[ServerConnection] = set()
        for u in to:
            key = _id(u)
            conns = users.get(key) if key is not None else None
            if conns:
                targets |= conns
        return targets


def _route(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.split("?", 1)[0] != WS_PATH:
        return connection.respond(HTTPStatus.NOT_FOUND, f"the relay serves WebSocket at {WS_PATH}\n")
    return None


async def start_relay(host: str = "127.0.0.1", port: int = 0) -> Server:
    """Listen on ``host:port``; the caller reads the port from ``server.sockets``."""
    relay = Relay()
    return await serve(
        relay.handler,
        host,
        port,
        process_request=_route,
        compression=None,
        ping_interval=None,  # routing only: the load generator's connections are local
        max_size=2**20,
        max_queue=64,
        server_header=None,
    )


async def _main(host: str, port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await start_relay(host, port)
    real_port = server.sockets[0].getsockname()[1]
    print(f"READY {real_port}", flush=True)
    await stop.wait()
    server.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3):
            await server.wait_closed()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers.relay",
                                     description="Bare msgpack WebSocket relay (the Python floor).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.run(_main(args.host, args.port))
    return uvloop.run(_main(args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
