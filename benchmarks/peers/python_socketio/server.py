"""The same relay as ``benchmarks/peers/socketio/server.js`` on python-socketio.

Stock python-socketio (``AsyncServer``, ``async_mode="asgi"``, default JSON and
default async handlers) under uvicorn on uvloop, websocket transport only and
no compression: what a Python team reaching for Socket.IO would deploy.

    python -m benchmarks.peers.python_socketio.server --port 0    # prints "READY <port>"

Events: auth ``{user}`` joins room ``u:<user>`` (no user: connect_error);
``dm {to, body}``, ``join {room}`` (acked ``"ok"``), ``room {room, body}``
(everyone in ``g:<room>`` but the sender), ``share {to: [...], body}``; each
delivers ``msg {from, [room,] body}``. ``--redis URL`` uses python-socketio's
Redis manager so several processes fan out to each other (needs the ``redis``
package, which the bench extra does not install).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from typing import Any

import socketio
import uvicorn


def _id(value: Any) -> str | None:
    """Ids are strings; numbers are accepted as their decimal text."""
    if type(value) is str:
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def build_server(redis: str | None = None) -> socketio.AsyncServer:
    """An AsyncServer with the benchmark's five events wired up."""
    kwargs: dict[str, Any] = {}
    if redis:
        try:
            import redis as _redis  # noqa: F401
        except ImportError as exc:
            raise SystemExit("--redis needs the 'redis' Python package (pip install redis)") from exc
        kwargs["client_manager"] = socketio.AsyncRedisManager(redis)
    sio = socketio.AsyncServer(
        async_mode="asgi",
        transports=["websocket"],
        cors_allowed_origins=[],
        http_compression=False,
        logger=False,
        engineio_logger=False,
        **kwargs,
    )
    users: dict[str, str] = {}  # sid -> user; a dict beats get_session() on every event

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        user = _id(auth.get("user")) if isinstance(auth, dict) else None
        if user is None:
            raise socketio.exceptions.ConnectionRefusedError("auth.user is required")
        users[sid] = user
        await sio.enter_room(sid, "u:" + user)

    @sio.event
    async def disconnect(sid: str, *reason: Any) -> None:
        users.pop(sid, None)

    @sio.event
    async def dm(sid: str, m: Any) -> None:
        to = _id(m.get("to")) if isinstance(m, dict) else None
        if to is not None:
            await sio.emit("msg", {"from": users[sid], "body": m.get("body")}, to="u:" + to)

    @sio.event
    async def join(sid: str, m: Any) -> str:
        room = _id(m.get("room")) if isinstance(m, dict) else None
        if room is None:
            return "bad room"
        await sio.enter_room(sid, "g:" + room)
        return "ok"

    @sio.event
    async def room(sid: str, m: Any) -> None:
        room = _id(m.get("room")) if isinstance(m, dict) else None
        if room is not None:
            data = {"from": users[sid], "room": room, "body": m.get("body")}
            await sio.emit("msg", data, to="g:" + room, skip_sid=sid)

    @sio.event
    async def share(sid: str, m: Any) -> None:
        to = m.get("to") if isinstance(m, dict) else None
        if not isinstance(to, list):
            return
        rooms = ["u:" + u for u in map(_id, to) if u is not None]
        if rooms:
            # One emit to a list of rooms: encoded once, each socket served once.
            await sio.emit("msg", {"from": users[sid], "body": m.get("body")}, to=rooms)

    return sio


async def _subscribe_now(sio: socketio.AsyncServer, url: str) -> None:
    """Start the Redis manager's listener before READY instead of on the first connection.

    python-socketio subscribes lazily, so a message published right after READY
    could be lost; and an unreachable Redis would only show as log lines.
    """
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.ping()
    except Exception as exc:
        raise SystemExit(f"cannot reach Redis at {url}: {exc}") from exc
    finally:
        await client.aclose()
    sio.manager_initialized = True
    sio.manager.initialize()
    async with asyncio.timeout(10):
        while True:  # redis-py offers no event for "SUBSCRIBE sent"
            pubsub = getattr(sio.manager, "pubsub", None)
            if pubsub is not None and pubsub.subscribed:
                return
            await asyncio.sleep(0.01)


async def _serve(host: str, port: int, redis: str | None, ws: str) -> int:
    sio = build_server(redis)
    if redis:
        await _subscribe_now(sio, redis)
    app = socketio.ASGIApp(sio, socketio_path="socket.io")
    config = uvicorn.Config(
        app,
        loop="none",  # the loop is already uvloop (see main)
        ws=ws,
        ws_per_message_deflate=False,
        ws_ping_interval=None,  # Engine.IO pings on its own
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    real_port = sock.getsockname()[1]
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            await serving
            return 1
        await asyncio.sleep(0.01)
    print(f"READY {real_port}", flush=True)
    await serving
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers.python_socketio.server",
        description="The benchmark relay on python-socketio + uvicorn + uvloop.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis", default=None, help="redis://HOST:PORT to fan out across processes")
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn websocket implementation")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # uvicorn turns SIGTERM into a graceful shutdown and then re-raises it, which
    # would kill us with the signal's default action; with a Python handler in
    # place the re-raise is a no-op and we exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.run(_serve(args.host, args.port, args.redis, args.ws))
    return uvloop.run(_serve(args.host, args.port, args.redis, args.ws))


if __name__ == "__main__":
    sys.exit(main())
