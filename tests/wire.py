"""Test helpers that speak the wire protocol with a plain websockets client.

``RawClient`` deliberately does not use the project's SDK: hub tests must see
exactly what travels on the socket.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from clipwire.protocol import decode, encode
from clipwire.server import ClipwireServer, sign_token

SECRET = "test-secret-that-is-long-enough-for-hs256"
WAIT_S = 5.0
#: The WebSocket transport of the tests' hubs: CLIPWIRE_TRANSPORT, as for ``clipwire serve``
#: (hubs started as processes read it themselves). ``CLIPWIRE_TRANSPORT=picows pytest``
#: runs the suite against picows; tests/server/test_transports.py runs both every time.
TRANSPORT = os.environ.get("CLIPWIRE_TRANSPORT", "websockets")


class RawClient:
    """One WebSocket connection: requests matched by id, events queued in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._events: deque[dict[str, Any]] = deque()
        self._replies: dict[int, dict[str, Any]] = {}
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> RawClient:
        return cls(await connect(url, **kwargs))

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.ws.send(encode(frame))

    async def send_raw(self, data: bytes | str) -> None:
        await self.ws.send(data)

    async def _read_one(self, timeout: float) -> None:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(data, bytes), f"hub sent a text frame: {data!r}"
        frame = decode(data)
        if frame["t"] in ("ok", "error") and "id" in frame:
            self._replies[frame["id"]] = frame
        else:
            self._events.append(frame)

    async def hello(self, token: str, **fields: Any) -> dict[str, Any]:
        reply = await self.call("hello", v=1, token=token, **fields)
        assert reply["t"] == "ok", reply
        self.welcome = reply
        return reply

    async def call(self, t: str, timeout: float = WAIT_S, **fields: Any) -> dict[str, Any]:
        """Send a request and return its reply (``ok`` or ``error``) as a frame."""
        rid = next(self._ids)
        await self.send_frame({"t": t, "id": rid, **fields})
        return await self.reply(rid, timeout)

    async def send_request(self, t: str, **fields: Any) -> int:
        """Send a request without waiting for its reply; returns its id for ``reply``."""
        rid = next(self._ids)
        await self.send_frame({"t": t, "id": rid, **fields})
        return rid

    async def reply(self, rid: int, timeout: float = WAIT_S) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while rid not in self._replies:
                await self._read_one(timeout)
        return self._replies.pop(rid)

    async def next_reply(self, timeout: float = WAIT_S) -> dict[str, Any]:
        """The reply to any request sent with ``send_request``, whichever comes first."""
        async with asyncio.timeout(timeout):
            while not self._replies:
                await self._read_one(timeout)
        return self._replies.pop(next(iter(self._replies)))

    async def ok(self, t: str, **fields: Any) -> dict[str, Any]:
        reply = await self.call(t, **fields)
        assert reply["t"] == "ok", reply
        return reply

    async def event(self, t: str | None = None, timeout: float = WAIT_S, **match: Any) -> dict[str, Any]:
        """The next queued event of type ``t`` whose fields equal ``match``; others stay queued."""
        async with asyncio.timeout(timeout):
            while True:
                for frame in self._events:
                    if (t is None or frame["t"] == t) and all(frame.get(k) == v for k, v in match.items()):
                        self._events.remove(frame)
                        return frame
                await self._read_one(timeout)

    async def no_event(self, t: str | None = None, wait_s: float = 0.3) -> None:
        """Assert that no event of type ``t`` arrives within ``wait_s``."""
        try:
            frame = await self.event(t, timeout=wait_s)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event {frame}")

    def queued(self) -> list[dict[str, Any]]:
        return list(self._events)

    async def closed(self, timeout: float = WAIT_S) -> tuple[int | None, str]:
        """Wait for the hub to close the connection; return its close code and reason."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        await self._read_one(timeout)
                    except ConnectionClosed:
                        break
        except TimeoutError:
            raise AssertionError("the hub did not close the connection") from None
        # What the hub sent in its close frame (``None`` if the TCP connection just dropped).
        rcvd = self.ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd else (None, "")

    async def close(self) -> None:
        await self.ws.close()


# The fixtures' types (see conftest.py). They live here because test modules
# cannot import from conftest reliably: each test folder may have its own.
HubFactory = Callable[..., Awaitable[ClipwireServer]]
Connect = Callable[..., Awaitable[RawClient]]
Dial = Callable[..., Awaitable[RawClient]]


def token(user: str, **kwargs: Any) -> str:
    return sign_token(SECRET, user, **kwargs)


def video_card(video_id: str = "v1", **fields: Any) -> dict[str, Any]:
    """A valid video card (section 6 of the protocol), with ``fields`` added or replaced."""
    return {"id": video_id, "url": f"https://videos.example/{video_id}", **fields}


async def history_all(client: RawClient, conv: str, page: int = 100) -> list[dict[str, Any]]:
    """Every message of ``conv``, oldest first, paged backwards with ``before``."""
    messages: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        fields: dict[str, Any] = {"conv": conv, "limit": page}
        if before is not None:
            fields["before"] = before
        batch = (await client.ok("history", **fields))["messages"]
        messages[:0] = batch
        # seq starts at 1 with no holes; a page may be cut short by size, not only by the start.
        if not batch or batch[0]["seq"] == 1:
            return messages
        before = batch[0]["seq"]


@dataclass
class Bystanders:
    """Two users already talking: proof that a hub still serves everyone else.

    ``start`` stores two messages in their DM; ``still_served`` checks that a new
    message is acknowledged and delivered and that history holds everything sent.
    """

    sender: RawClient
    receiver: RawClient
    conv: str
    texts: list[str] = field(default_factory=list)

    @classmethod
    async def start(cls, open_as: Callable[[str], Awaitable[RawClient]]) -> Bystanders:
        sender, receiver = await open_as("bystander-a"), await open_as("bystander-b")
        first = await sender.ok("send", to="bystander-b", cmid="before-1", text="stored before 1")
        await sender.ok("send", conv=first["conv"], cmid="before-2", text="stored before 2")
        for seq in (1, 2):
            await receiver.event("msg", conv=first["conv"], seq=seq)
        return cls(sender, receiver, first["conv"], ["stored before 1", "stored before 2"])

    async def still_served(self) -> None:
        text = f"sent after {len(self.texts) - 1}"
        ok = await self.sender.ok("send", conv=self.conv, cmid=f"after-{len(self.texts)}", text=text)
        self.texts.append(text)
        assert ok["seq"] == len(self.texts)
        msg = await self.receiver.event("msg", conv=self.conv, seq=ok["seq"])
        assert msg["text"] == text
        stored = (await self.receiver.ok("history", conv=self.conv))["messages"]
        assert [m["text"] for m in stored] == self.texts


@dataclass
class HubProcess:
    """A hub running as a real ``clipwire serve`` process, for crash tests."""

    db: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    #: A command the hub runs under, e.g. ``nsenter`` into a mount namespace of the test's.
    prefix: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    url: str = ""
    #: Where the hub's log goes: inherited, or ``subprocess.PIPE`` to read it after ``stop``.
    stderr: int | None = None

    def start(self, port: int = 0) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()  # the pipe of a process killed before this restart
        env = {**os.environ, "CLIPWIRE_SECRET": SECRET, "CLIPWIRE_LOG_LEVEL": "WARNING",
               "CLIPWIRE_DM_POLICY": "everyone", "CLIPWIRE_RATE_SEND_PER_S": "100000",
               "CLIPWIRE_RATE_HISTORY_PER_S": "100000", "CLIPWIRE_RATE_FRIEND_PER_S": "100000",
               **self.extra_env}
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "clipwire.server", "serve", "--port", str(port),
             "--db", str(self.db)],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"(ws://\S+/ws)", line)
        assert found, f"hub did not start: {line!r}"
        self.url = found.group(1)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def http_get(port: int, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of a plain HTTP GET on the hub's port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()
