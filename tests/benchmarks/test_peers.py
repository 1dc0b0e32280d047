"""The benchmark's peer servers, started for real, route dm, room and share as specified.

A benchmark that compares Clipwire with peers is only honest if the peers do the
same work: each test here drives a real peer process with the client the load
generator uses (``SocketIOClient`` for the Socket.IO servers, a msgpack
websockets client for the relay). The Node.js peer is never skipped in CI: it
installs its pinned packages with ``npm ci`` when node_modules is missing.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

# `benchmarks` is not an installed package: `python -m pytest` finds it through the
# working directory, a bare `pytest` only through this.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from benchmarks.peers import (  # noqa: E402
    PeerKind,
    PeerProcess,
    PeerUnavailable,
    ensure_installed,
    start_peer,
    start_peer_async,
    stop_peer_async,
)
from benchmarks.peers.sioclient import SocketIOClient, SocketIOConnectError  # noqa: E402

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
WAIT = 10.0


def _node_ready() -> None:
    """Install the Node peer (npm ci) if needed; skip only outside CI when Node is absent."""
    try:
        ensure_installed(timeout=90)
    except PeerUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the Socket.IO peer: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def peers() -> Iterator[Callable[[PeerKind], PeerProcess]]:
    """One process per kind for the whole module, started on first use; each must stop cleanly."""
    started: dict[str, PeerProcess] = {}

    def get(kind: PeerKind) -> PeerProcess:
        if kind not in started:
            if kind == "socketio":
                _node_ready()
            started[kind] = start_peer(kind)
        return started[kind]

    yield get
    codes = {kind: peer.stop() for kind, peer in started.items()}
    assert codes == dict.fromkeys(started, 0), "a peer did not exit cleanly on SIGTERM"


class Inbox:
    """Events a client received, awaited one at a time."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def on_event(self, name: str, data: Any) -> None:
        self.queue.put_nowait((name, data))

    async def next(self) -> tuple[str, Any]:
        async with asyncio.timeout(WAIT):
            return await self.queue.get()


class SioUser:
    """A Socket.IO user: one SocketIOClient and its inbox."""

    def __init__(self, client: SocketIOClient, inbox: Inbox) -> None:
        self.client, self.inbox = client, inbox

    async def send(self, event: str, data: dict[str, Any]) -> None:
        await self.client.emit(event, data)

    async def join(self, room: str) -> None:
        assert await self.client.call("join", {"room": room}) == "ok"

    async def next_msg(self) -> dict[str, Any]:
        name, data = await self.inbox.next()
        assert name == "msg"
        assert isinstance(data, dict)
        return data


class RelayUser:
    """A relay user: a msgpack websockets connection that has said hello."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.join_id = 0

    async def send(self, kind: str, data: dict[str, Any]) -> None:
        await self.ws.send(msgpack.packb({"t": kind, **data}))

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            frame = await self.ws.recv()
        assert isinstance(frame, bytes), "the relay sends binary frames"
        message = msgpack.unpackb(frame)
        assert isinstance(message, dict)
        return message

    async def join(self, room: str) -> None:
        self.join_id += 1
        await self.send("join", {"id": self.join_id, "room": room})
        assert await self.recv() == {"t": "ok", "id": self.join_id}

    async def next_msg(self) -> dict[str, Any]:
        message = await self.recv()
        assert message.pop("t") == "msg"
        return message


User = SioUser | RelayUser
Connect = Callable[[str], Awaitable[User]]


@pytest.fixture(params=["socketio", "python-socketio", "relay"])
async def connect(request: pytest.FixtureRequest,
                  peers: Callable[[PeerKind], PeerProcess]) -> AsyncIterator[Connect]:
    """``await connect("alice")`` on the parametrized peer; users are unique per test."""
    kind: PeerKind = request.param
    peer = peers(kind)
    closers: list[Callable[[], Awaitable[None]]] = []

    async def open_as(user: str) -> User:
        if kind == "relay":
            ws = await ws_connect(peer.url, compression=None)
            closers.append(ws.close)
            await ws.send(msgpack.packb({"t": "hello", "user": user}))
            relay_user = RelayUser(ws)
            assert await relay_user.recv() == {"t": "ok"}
            return relay_user
        inbox = Inbox()
        client = await SocketIOClient.connect(peer.url, {"user": user}, inbox.on_event, timeout=WAIT)
        closers.append(client.close)
        assert client.sid
        return SioUser(client, inbox)

    yield open_as
    for close in reversed(closers):
        await close()


def names(*users: str) -> list[str]:
    """Fresh user names, so tests sharing a module-scoped peer never see each other's traffic."""
    tag = uuid.uuid4().hex[:8]
    return [f"{u}-{tag}" for u in users]


async def test_dm_reaches_every_connection_of_the_recipient(connect: Connect) -> None:
    alice, bob = names("alice", "bob")
    a = await connect(alice)
    b1 = await connect(bob)
    b2 = await connect(bob)
    await a.send("dm", {"to": bob, "body": "hi bob"})
    for b in (b1, b2):
        assert await b.next_msg() == {"from": alice, "body": "hi bob"}
    await b1.send("dm", {"to": alice, "body": "hi alice"})
    assert await a.next_msg() == {"from": bob, "body": "hi alice"}


async def test_room_reaches_members_but_not_the_sender(connect: Connect) -> None:
    alice, bob, carol, dave = names("alice", "bob", "carol", "dave")
    room = f"room-{uuid.uuid4().hex[:8]}"
    a, b, c, d = [await connect(u) for u in (alice, bob, carol, dave)]
    for member in (a, b, c):
        await member.join(room)
    await a.send("room", {"room": room, "body": "hello room"})
    for member in (b, c):
        assert await member.next_msg() == {"from": alice, "room": room, "body": "hello room"}
    # Markers sent after the room message: each must be the first thing its receiver sees,
    # so the sender got no copy of its own room message and dave (not a member) got none.
    await a.send("dm", {"to": alice, "body": "marker"})
    assert await a.next_msg() == {"from": alice, "body": "marker"}
    await a.send("dm", {"to": dave, "body": "marker"})
    assert await d.next_msg() == {"from": alice, "body": "marker"}


async def test_share_reaches_each_recipient(connect: Connect) -> None:
    alice, bob, carol, dave = names("alice", "bob", "carol", "dave")
    a, b, c, d = [await connect(u) for u in (alice, bob, carol, dave)]
    await a.send("share", {"to": [bob, carol], "body": "video:42"})
    for recipient in (b, c):
        assert await recipient.next_msg() == {"from": alice, "body": "video:42"}
    await a.send("dm", {"to": dave, "body": "marker"})
    assert await d.next_msg() == {"from": alice, "body": "marker"}


@pytest.mark.parametrize("kind", ["socketio", "python-socketio"])
async def test_socketio_connect_without_user_is_refused(
    kind: PeerKind, peers: Callable[[PeerKind], PeerProcess]
) -> None:
    with pytest.raises(SocketIOConnectError):
        await SocketIOClient.connect(peers(kind).url, {}, lambda name, data: None, timeout=WAIT)


def _redis_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("kind", ["socketio", "python-socketio"])
async def test_socketio_over_redis_fans_out_across_processes(kind: PeerKind) -> None:
    """Two processes on one Redis: a dm sent on one reaches a user on the other."""
    if not _redis_up():
        pytest.skip(f"no Redis at {REDIS_HOST}:{REDIS_PORT}")
    if kind == "socketio":
        _node_ready()
    else:
        pytest.importorskip("redis", reason="python-socketio's Redis manager needs the redis package")
    redis_url = f"redis://{REDIS_HOST}:{REDIS_PORT}"
    one, two = await asyncio.gather(start_peer_async(kind, redis=redis_url),
                                    start_peer_async(kind, redis=redis_url))
    try:
        alice, bob = names("alice", "bob")
        inbox = Inbox()
        a = await SocketIOClient.connect(one.url, {"user": alice}, lambda name, data: None)
        b = await SocketIOClient.connect(two.url, {"user": bob}, inbox.on_event)
        try:
            await a.emit("dm", {"to": bob, "body": "across nodes"})
            assert await inbox.next() == ("msg", {"from": alice, "body": "across nodes"})
        finally:
            await a.close()
            await b.close()
    finally:
        codes = await asyncio.gather(stop_peer_async(one), stop_peer_async(two))
    assert list(codes) == [0, 0]
