"""A lean WebSocket client for the load generator: one ``asyncio.Protocol`` per connection.

The websockets asyncio client wakes a task and a future and takes a lock for
every message. At tens of thousands of messages a second that overhead is what
a one-core generator would end up measuring. Here frames are parsed in
``data_received`` and handed to a callback synchronously, and sends are
synchronous writes. The handshake follows RFC 6455 section 4.1, and frames are
masked with a fresh key (websockets' C ``apply_mask`` when available). Only
what the benchmark needs is here: no extensions, no fragmented sends, pings
are answered, and closing is a proper close handshake.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import random
from collections.abc import Callable
from urllib.parse import urlsplit

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension ships with websockets' wheels
    def apply_mask(data: bytes, mask: bytes) -> bytes:  # type: ignore[misc]
        return bytes(b ^ mask[i & 3] for i, b in enumerate(data))

log = logging.getLogger(__name__)
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 16 * 1024
OnMessage = Callable[[bytes, bool], None]  # payload, is_text


class HandshakeError(ConnectionError):
    pass


class FastWS(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, on_message: OnMessage) -> None:
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.subprotocol: str | None = None
        self.close_code: int | None = None
        self._key = base64.b64encode(os.urandom(16))
        self._buf = bytearray()
        self._open = False
        self._closing = False
        self._frag_op = 0
        self._frags: list[bytes] = []
        self._rand = random.Random()

    @classmethod
    async def connect(cls, url: str, on_message: OnMessage, subprotocols: tuple[str, ...] = (),
                      timeout: float = 30.0, bind: Callable[[FastWS], None] | None = None) -> FastWS:
        """Open and handshake; ``bind`` gets the connection before any message can arrive."""
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        if parts.scheme not in ("ws", "http"):
            raise ValueError(f"only plain ws:// URLs are supported, not {url!r}")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            _, ws = await loop.create_connection(lambda: cls(loop, on_message), host, port)
            if bind is not None:
                bind(ws)
            ws._handshake(f"{host}:{port}", target, subprotocols)
            try:
                await asyncio.shield(ws.opened)
            except BaseException:
                ws.abort()
                raise
        return ws

    # -- sending --------------------------------------------------------------

    def _handshake(self, hostport: str, target: str, subprotocols: tuple[str, ...]) -> None:
        lines = [f"GET {target} HTTP/1.1", f"Host: {hostport}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {self._key.decode()}", "Sec-WebSocket-Version: 13"]
        if subprotocols:
            lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
        assert self.transport is not None
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _frame(self, opcode: int, payload: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or (self._closing and opcode != 8):
            raise ConnectionError("the connection is closed")
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
        mask = self._rand.getrandbits(32).to_bytes(4, "big")
        transport.write(head + mask + apply_mask(payload, mask))

    def send(self, payload: bytes, text: bool = False) -> None:
        """Write one message now (raises ConnectionError once the connection is closing)."""
        self._frame(0x1 if text else 0x2, payload)

    @property
    def closed(self) -> bool:
        return self.done.done()

    @property
    def closing(self) -> bool:
        """True once either side started closing: nothing more may be sent."""
        return self._closing or self.transport is None or self.transport.is_closing()

    @property
    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel (the server is not reading)."""
        return self.transport.get_write_buffer_size() if self.transport else 0

    async def close(self, code: int = 1000, timeout: float = 2.0) -> None:
        """Close handshake: send close, wait for the server to close the TCP connection."""
        if not self.done.done() and self.transport is not None and not self._closing:
            try:
                self._frame(0x8, code.to_bytes(2, "big"))
            except ConnectionError:
                pass
            self._closing = True
        try:
            await asyncio.wait_for(asyncio.shield(self.done), timeout)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- receiving ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake: {exc}"))
        if not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if not self._open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._fail_handshake("response headers too long")
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[:end + 4]
            if not self._accept(head):
                return
        pos = self._frames(buf)
        if pos:
            del buf[:pos]

    def _accept(self, head: str) -> bool:
        status, *header_lines = head.split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(self._key + GUID).digest()).decode()
        if status.split(" ", 2)[1:2] != ["101"]:
            self._fail_handshake(f"server answered {status!r}")
            return False
        if headers.get("sec-websocket-accept") != expected:
            self._fail_handshake("bad Sec-WebSocket-Accept")
            return False
        self.subprotocol = headers.get("sec-websocket-protocol")
        self._open = True
        self.opened.set_result(None)
        return True

    def _fail_handshake(self, why: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(why))
        self.abort()

    def _frames(self, buf: bytearray) -> int:
        pos, n = 0, len(buf)
        on_message = self.on_message
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                start = pos + 10
            mask = b""
            if b1 & 0x80:  # servers must not mask, but read it right if one does
                if n - start < 4:
                    break
                mask = bytes(buf[start:start + 4])
                start += 4
            end = start + length
            if end > n:
                break
            payload = bytes(buf[start:end])
            if mask:
                payload = apply_mask(payload, mask)
            pos = end
            opcode = b0 & 0x0F
            if opcode == 0x1 or opcode == 0x2:
                if b0 & 0x80:
                    try:
                        on_message(payload, opcode == 0x1)
                    except Exception:
                        log.exception("on_message failed; the message is dropped")
                else:
                    self._frag_op, self._frags = opcode, [payload]
            elif opcode == 0x0:
                self._frags.append(payload)
                if b0 & 0x80:
                    on_message(b"".join(self._frags), self._frag_op == 0x1)
                    self._frags = []
            elif opcode == 0x9:
                if not self._closing:
                    self._frame(0xA, payload)
            elif opcode == 0x8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                if not self._closing:
                    self._closing = True
                    try:
                        self._frame(0x8, payload[:2])
                    except ConnectionError:
                        pass
                if self.transport is not None:
                    self.transport.close()
                return n
        return pos
