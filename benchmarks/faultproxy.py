"""A TCP relay between clients and a real hub that injects network faults.

It forwards bytes unchanged, except that it understands the hub-to-client side
of the WebSocket stream (unmasked frames after the HTTP upgrade; the hub turns
compression off) well enough to drop, repeat or hold back whole frames. It can
also cut every relayed connection (the client sees 1006, the hub a lost
connection) and refuse new ones, which is how a test keeps a client "away"
while the hub goes on, or cut a random share of the connections (a flaky mobile
network: ``cut_random``). Nothing in the hub or the SDK is replaced.

Shared by the SDK tests (``tests/client``), the fault-injection runs
(``benchmarks/faults.py``) and their short versions in ``tests/faults``.
Loopback only: it listens on ``host`` (127.0.0.1 by default) and relays to the
hub on the same host.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from clipwire.protocol import FrameError, Limits, decode

Action = Literal["pass", "drop", "dup", "hold"]
FrameFilter = Callable[[dict[str, Any]], Action]

_LIMITS = Limits(max_frame_bytes=1 << 24, max_str_len=1 << 24, max_array_len=1 << 20,
                 max_map_len=1 << 20, max_depth=32)


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    hub: asyncio.StreamWriter
    held: list[bytes] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        self.client.transport.abort()
        self.hub.transport.abort()


class FaultProxy:
    def __init__(self, hub_port: int, host: str = "127.0.0.1") -> None:
        self.hub_host = host
        self.hub_port = hub_port
        self.port = 0
        #: New connections are closed at once (the client cannot reach the hub).
        self.refuse = False
        #: Hub-to-client frames are all dropped.
        self.blackhole = False
        #: Decides for each binary hub-to-client frame (decoded) what happens to it.
        self.filter: FrameFilter | None = None
        self.accepted = 0
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"ws://{self.hub_host}:{self.port}/ws"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, self.hub_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """Abort every relayed connection now."""
        for link in list(self._links):
            link.abort()

    @property
    def links(self) -> int:
        """Connections relayed right now."""
        return len(self._links)

    def cut_random(self, fraction: float, rng: random.Random) -> int:
        """Abort each relayed connection with probability ``fraction``; return how many."""
        chosen = [link for link in list(self._links) if rng.random() < fraction]
        for link in chosen:
            link.abort()
        return len(chosen)

    def release(self) -> None:
        """Send the frames held back so far, in the order they came."""
        for link in list(self._links):
            held, link.held = link.held, []
            for frame in held:
                link.client.write(frame)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._relay(reader, writer)
        except asyncio.CancelledError:
            pass  # closing the proxy; the stream callback must not see a cancelled task
        finally:
            self._handlers.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        try:
            hub_reader, hub_writer = await asyncio.open_connection(self.hub_host, self.hub_port)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        link = _Link(writer, hub_writer)
        self._links.add(link)
        loop = asyncio.get_running_loop()
        link.tasks = [loop.create_task(self._up(reader, hub_writer)),
                      loop.create_task(self._down(hub_reader, link))]
        try:
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in link.tasks:
                t.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
            self._links.discard(link)
            link.abort()
            await _closed(writer)
            await _closed(hub_writer)

    @staticmethod
    async def _up(reader: asyncio.StreamReader, hub: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                hub.write(data)
                await hub.drain()

    async def _down(self, reader: asyncio.StreamReader, link: _Link) -> None:
        client = link.client
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            client.write(await reader.readuntil(b"\r\n\r\n"))  # the HTTP upgrade response
            while True:
                head = await reader.readexactly(2)
                length = head[1] & 0x7F
                extra = b""
                if length == 126:
                    extra = await reader.readexactly(2)
                    length = int.from_bytes(extra, "big")
                elif length == 127:
                    extra = await reader.readexactly(8)
                    length = int.from_bytes(extra, "big")
                if head[1] & 0x80:
                    extra += await reader.readexactly(4)  # a mask; the hub sends none
                payload = await reader.readexactly(length)
                frame = head + extra + payload
                action = self._decide(head[0], payload)
                if action == "hold":
                    link.held.append(frame)
                    continue
                if action != "drop":
                    client.write(frame * (2 if action == "dup" else 1))
                    await client.drain()

    def _decide(self, first_byte: int, payload: bytes) -> Action:
        if self.blackhole:
            return "drop"
        fin, opcode = first_byte & 0x80, first_byte & 0x0F
        if self.filter is None or opcode != 2 or not fin:
            return "pass"
        try:
            decoded = decode(payload, _LIMITS)
        except FrameError:
            return "pass"
        return self.filter(decoded)


async def _closed(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
