"""The WebSocket transport on picows (``transport = "picows"``).

The same behaviour as the ``websockets`` transport (websocket.py), with less work
per frame: picows parses frames in Cython and calls :meth:`PicowsConnection.on_ws_frame`
for each one, which copies the payload into a small per-connection queue and wakes
the hub's ``async for`` only when it is waiting. There is no task, lock, assembler or
future per frame; a frame that arrives while the hub is busy costs an append.

A connection's life:

- :class:`_FrontDoor` reads the HTTP request head, within ``handshake_timeout_s`` and
  16 KB (slowloris). Plain HTTP (``/healthz``, ``/readyz``, ``/metrics``, the demo, 404)
  is answered by the shared routes of http.py, with ``Connection: close``: picows
  calls its router synchronously, and ``/readyz`` must await the store. ``GET /ws``
  goes through the upgrade checks (hub full: 503, Origin: 403), then the socket is
  handed to picows' protocol with the head replayed into it; picows validates the
  upgrade and answers 101, with ``clipwire.v1`` when the client offered it.
- :class:`PicowsConnection` is the hub's ``Connection``. Incoming: binary messages
  (fragmented ones reassembled, bounded by ``max_frame_bytes`` in all, 1009 past it);
  text messages reach the hub as ``str`` (it closes them with 4003), invalid UTF-8
  closes 1007, reserved bits or stray continuations 1002. When ``MAX_QUEUE`` messages
  wait for the hub, the socket is no longer read until the hub has taken most of them,
  so a fast sender cannot grow the hub's memory. Outgoing: ``send`` writes the frame
  at once (picows tries the socket first), bounded by ``send_buffer_bytes`` as in
  websocket.py: ephemeral frames are dropped past half of it, past all of it the
  client is closed with 4009.
- Keepalive: a ping every ``ping_interval_s``; no pong within ``ping_timeout_s``
  closes 1011 (picows' own auto-ping would close 1001, which the protocol does not
  document). Closing: the close frame, then ``CLOSE_TIMEOUT_S`` for the client's
  reply before the TCP connection is dropped; while the client is not reading (the
  socket's buffer above its high-water mark), that wait starts only once it reads
  again, within the keepalive bound (``ping_interval_s + ping_timeout_s``). The TCP
  close lingers (:func:`_close_lingering`): a FIN, then the client's remaining bytes
  are read and dropped, so that a client still sending when picows refuses its frame
  gets the close frame rather than a reset.

Not supported here: ``permessage_deflate`` (``HubConfig.check`` refuses the pair).
The only picows API used beyond the documented one is its protocol class
(``picows.picows.WSProtocol``), constructed with the arguments ``ws_create_server``
gives it, which is how picows itself hands over a socket after TLS in ``ws_connect``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows import picows as _picows_impl

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
    wait_tasks,
)

log = logging.getLogger("clipwire.transport")

# picows' protocol class is not in its type stubs: it is built by ws_create_server.
_WSProtocol: Callable[..., asyncio.BufferedProtocol] = _picows_impl.WSProtocol  # type: ignore[attr-defined]

MAX_HEAD_BYTES = 16_000  # an HTTP request head (picows' own limit is 16 KiB)
MAX_HEADERS = 128
# picows' read buffer to start with (its smallest): it doubles whenever a read fills
# it, so busy connections and big frames get room, and the idle ones cost little.
READ_BUFFER_BYTES = 2048
RESUME_READING_AT = MAX_QUEUE // 4

_BINARY = WSMsgType.BINARY
_TEXT = WSMsgType.TEXT
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE
_PONG = WSMsgType.PONG
# Close codes a peer may not send on the wire (RFC 6455, 7.4.1): echo 1000 instead.
_NOT_ON_THE_WIRE = frozenset({0, 1005, 1006, 1015})

if TYPE_CHECKING:
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:
    _LoggerAdapter = logging.LoggerAdapter


class _PicowsLog(_LoggerAdapter):
    """picows' log lines, at the hub's levels: its per-connection lines are DEBUG here,
    and a malformed or oversized frame (the peer's fault, answered with a close code)
    is INFO, not ERROR. Failures of the hub's own code stay ERROR."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level == logging.INFO:
            level = logging.DEBUG
        elif level == logging.ERROR and isinstance(msg, str) and msg.startswith("WS parser error"):
            level = logging.INFO
        super().log(level, msg, *args, **kwargs)


_picows_log = _PicowsLog(logging.getLogger("clipwire.transport.picows"))


class PicowsConnection(WSListener):
    """A picows connection adapted to the hub's ``Connection`` interface."""

    _ws: WSTransport

    def __init__(self, server: PicowsServer, transport: asyncio.Transport) -> None:
        super().__init__()
        self._server = server
        self._transport = transport
        self._loop = server.loop
        self._max_buffered_bytes = server.hub.config.send_buffer_bytes
        self._max_message_bytes = server.hub.config.max_frame_bytes
        self._close: tuple[int, str] | None = None
        self.ephemeral_dropped = 0
        self._queue: deque[bytes | str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._reading_paused = False
        self._writing_paused = False
        self._parts: list[bytes] | None = None  # a fragmented message so far
        self._parts_bytes = 0
        self._parts_text = False
        self._ping_timer: asyncio.TimerHandle | None = None
        self._awaiting_pong = False
        self._abort_timer: asyncio.TimerHandle | None = None

    # -- the hub's side -----------------------------------------------------

    @property
    def remote(self) -> str:
        address = self._transport.get_extra_info("peername")
        return f"{address[0]}:{address[1]}" if address else "?"

    @property
    def transport(self) -> asyncio.Transport:
        """The TCP transport underneath (its write buffer is what ``send`` bounds)."""
        return self._transport

    def send(self, data: bytes, ephemeral: bool = False) -> None:
        if self._close is not None or self._eof:
            return
        buffered = self._transport.get_write_buffer_size()
        if ephemeral and buffered > self._max_buffered_bytes // 2:
            self.ephemeral_dropped += 1  # typing, presence, watch go first
            return
        if buffered > self._max_buffered_bytes:
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer: send buffer full, resume later")
            return
        self._ws.send(_BINARY, data)

    def close(self, code: int, reason: str) -> None:
        """Send a close frame (once); the connection ends when the client answers it,
        or ``CLOSE_TIMEOUT_S`` later. Messages still queued, or arriving, are dropped."""
        if self._close is not None:
            return
        self._close = (code, reason)
        self._stop_keepalive()
        self._queue.clear()
        self._parts = None
        if self._eof:
            return
        if self._reading_paused:  # the client's close frame must be read
            self._reading_paused = False
            self._transport.resume_reading()
        if not self._ws.is_close_frame_sent:
            self._ws.send_close(WSCloseCode(code), _close_reason(reason))
        self._arm_abort()

    def __aiter__(self) -> PicowsConnection:
        return self

    async def __anext__(self) -> bytes | str:
        queue = self._queue
        while not queue:
            if self._eof:
                raise StopAsyncIteration
            waiter = self._waiter = self._loop.create_future()
            await waiter
        data = queue.popleft()
        if self._reading_paused and len(queue) <= RESUME_READING_AT and self._close is None:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    async def finish(self) -> None:
        """Close (1000 unless a code was chosen) and wait until the connection is gone."""
        self.close(CloseCode.NORMAL, "")
        await self._ws.wait_disconnected()

    # -- picows' side ---------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._ws = transport
        self._schedule_ping()
        self._server.connected(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is _BINARY and frame.fin and self._parts is None and self._close is None \
                and not (frame.rsv1 or frame.rsv2 or frame.rsv3):
            self._deliver(frame.get_payload_as_bytes())
        else:
            self._other_frame(frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._stop_keepalive()
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self._end_of_input()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._abort_timer is not None:  # closing: the client reads again, the close frame is near
            self._arm_abort()

    # -- incoming -------------------------------------------------------------

    def _deliver(self, data: bytes | str) -> None:
        queue = self._queue
        queue.append(data)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if len(queue) >= MAX_QUEUE and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    def _end_of_input(self) -> None:
        self._eof = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _other_frame(self, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is _CLOSE:
            self._peer_closed(frame)
            return
        if msg_type is _PONG:
            if self._awaiting_pong:
                self._awaiting_pong = False
                self._schedule_ping()
            return
        if self._close is not None or msg_type not in (_BINARY, _TEXT, _CONTINUATION):
            return  # closing: input is over (and picows answers pings itself)
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self.close(WSCloseCode.PROTOCOL_ERROR.value, "reserved bits set; no extension was negotiated")
            return
        if msg_type is _CONTINUATION:
            if self._parts is None:
                self.close(WSCloseCode.PROTOCOL_ERROR.value, "continuation frame, but no message to continue")
                return
        elif self._parts is not None:
            self.close(WSCloseCode.PROTOCOL_ERROR.value, "new message before the fragmented one ended")
            return
        else:
            self._parts, self._parts_bytes, self._parts_text = [], 0, msg_type is _TEXT
        self._parts_bytes += frame.payload_size
        if self._parts_bytes > self._max_message_bytes:
            self.close(WSCloseCode.MESSAGE_TOO_BIG.value,
                       f"message over {self._max_message_bytes} bytes")
            return
        self._parts.append(frame.get_payload_as_bytes())
        if not frame.fin:
            return
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts = None
        if not self._parts_text:
            self._deliver(data)
            return
        try:
            self._deliver(data.decode())
        except UnicodeDecodeError:
            self.close(WSCloseCode.INVALID_TEXT.value, "invalid UTF-8 in a text message")

    def _peer_closed(self, frame: WSFrame) -> None:
        """The client's close frame: answer it (unless it answers ours), then end."""
        if self._close is None:
            code = int(frame.get_close_code().value)
            if code in _NOT_ON_THE_WIRE:
                code = CloseCode.NORMAL
            self._close = (code, "")
            self._stop_keepalive()
            self._queue.clear()
            self._parts = None
            if not self._ws.is_close_frame_sent:
                self._ws.send_close(WSCloseCode(code))
        self._end_of_input()
        self._ws.disconnect()  # the server closes TCP first; the close frame goes out before
        if self._abort_timer is None:
            self._arm_abort()

    # -- timers ---------------------------------------------------------------

    def _arm_abort(self) -> None:
        """Drop the TCP connection if it has not ended in time."""
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        config = self._server.hub.config
        wait = config.ping_interval_s + config.ping_timeout_s if self._writing_paused else CLOSE_TIMEOUT_S
        self._abort_timer = self._loop.call_later(wait, self._transport.abort)

    def _schedule_ping(self) -> None:
        self._ping_timer = self._loop.call_later(self._server.hub.config.ping_interval_s, self._ping)

    def _ping(self) -> None:
        if self._close is not None or self._eof:
            return
        self._ws.send_ping()
        self._awaiting_pong = True
        self._ping_timer = self._loop.call_later(self._server.hub.config.ping_timeout_s, self._no_pong)

    def _no_pong(self) -> None:
        if self._awaiting_pong:
            self.close(CloseCode.INTERNAL, "keepalive ping timeout")

    def _stop_keepalive(self) -> None:
        self._awaiting_pong = False
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None


def _close_reason(reason: str) -> bytes:
    """At most 123 bytes of UTF-8, as a close frame allows."""
    encoded = reason.encode()
    return encoded if len(encoded) <= 123 else encoded[:123].decode(errors="ignore").encode()


class _FrontDoor(asyncio.Protocol):
    """Reads one HTTP request head, then answers it or hands the socket to picows."""

    def __init__(self, server: PicowsServer) -> None:
        self._server = server
        self._head = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._timer = self._server.loop.call_later(self._server.hub.config.handshake_timeout_s,
                                                   self.abort)
        self._server.doors.add(self)

    def data_received(self, data: bytes) -> None:
        if self._timer is None:  # answered already; request bodies are not read
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0 and len(self._head) < MAX_HEAD_BYTES:
            return
        self._leave()
        transport = self._transport
        assert transport is not None
        if end < 0 or end + 4 > MAX_HEAD_BYTES:
            _answer(transport, HttpResponse.text(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                                                 "request head too large\n"))
            return
        try:
            request = _parse_head(bytes(self._head[:end]))
        except ValueError as exc:
            _answer(transport, HttpResponse.text(HTTPStatus.BAD_REQUEST, f"bad request: {exc}\n"))
            return
        if request.method != "GET":
            _answer(transport, HttpResponse.text(HTTPStatus.METHOD_NOT_ALLOWED, "only GET here\n",
                                                 (("Allow", "GET"),)))
        elif request.path == WS_PATH:
            self._server.upgrade(transport, request, bytes(self._head))
        else:
            self._server.answer_http(transport, request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._leave()

    def abort(self) -> None:
        """Give up on this connection (no request head in time, or the server stops)."""
        self._leave()
        if self._transport is not None:
            self._transport.abort()

    def _leave(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._server.doors.discard(self)


def _parse_head(head: bytes) -> HttpRequest:
    lines = head.split(b"\r\n")
    if len(lines) - 1 > MAX_HEADERS:
        raise ValueError("too many headers")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise ValueError("malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ValueError("unsupported HTTP version")
    if not (method.isalpha() and method.isupper()) or not target.startswith(b"/"):
        raise ValueError("malformed request line")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or any(c in name for c in b" \t"):
            raise ValueError("malformed header")
        headers.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return HttpRequest(method.decode("ascii"), target.decode("ascii"), tuple(headers))


def _answer(transport: asyncio.Transport, response: HttpResponse) -> None:
    """Write ``response`` and close the connection (one request per connection)."""
    if transport.is_closing():
        return
    status = response.status
    head = [f"HTTP/1.1 {status.value} {status.phrase}", f"Date: {formatdate(usegmt=True)}",
            f"Server: {SERVER_NAME}", "Connection: close", f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}"]
    head.extend(f"{name}: {value}" for name, value in response.headers)
    transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
    _close_lingering(transport)


def _close_lingering(transport: asyncio.Transport) -> None:
    """Close without a reset: the FIN once the buffer is out, then what the client still
    sends is read and dropped until it closes too, or ``CLOSE_TIMEOUT_S`` has passed.

    Closing a socket with unread bytes in it resets the connection, and what was not
    yet sent (a close frame, an HTTP answer) may be lost: this happens when picows
    refuses a frame (1009) and closes while the client is still sending. websockets
    avoids it by reading until the client's close frame; this does the same for picows.
    """
    protocol = transport.get_protocol()
    if transport.is_closing() or isinstance(protocol, _Drain):
        return
    drain = _Drain(protocol, asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, transport.abort))
    transport.set_protocol(drain)
    if transport.can_write_eof():
        transport.write_eof()
    else:
        transport.close()


class _Drain(asyncio.Protocol):
    """A closing connection's protocol: drops what arrives; its end goes to ``protocol``."""

    def __init__(self, protocol: asyncio.BaseProtocol, timer: asyncio.TimerHandle) -> None:
        self._protocol = protocol
        self._timer = timer

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the client has closed its side too: close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()
        self._protocol.connection_lost(exc)


class _PicowsSide:
    """The TCP transport as picows sees it: the same, except that ``close`` lingers
    (see :func:`_close_lingering`). picows looks its methods up once per connection."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.write = transport.write
        self.writelines = transport.writelines
        self.get_write_buffer_size = transport.get_write_buffer_size
        self.get_extra_info = transport.get_extra_info
        self.is_closing = transport.is_closing
        self.abort = transport.abort

    def close(self) -> None:
        _close_lingering(self._transport)


def _feed(protocol: asyncio.BufferedProtocol, transport: asyncio.Transport, data: bytes) -> None:
    """Give ``data``, already read from the socket, to a buffered protocol."""
    view = memoryview(data)
    while view and not transport.is_closing():
        buffer = memoryview(protocol.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]


class PicowsServer:
    """The picows transport's listening socket and its connections."""

    def __init__(self, hub: Hub, routes: HttpRoute | None) -> None:
        self.hub = hub
        self.loop = asyncio.get_running_loop()
        self._http = hub_routes(hub, routes)
        self._origins = allowed_origins(hub)
        self.doors: set[_FrontDoor] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def listen(self, host: str, port: int, reuse_port: bool) -> None:
        self._server = await self.loop.create_server(lambda: _FrontDoor(self), host, port,
                                                     reuse_port=reuse_port or None)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()
        for door in list(self.doors):  # half-sent requests are not waited for
            door.abort()

    async def wait_closed(self) -> None:
        await wait_tasks(self._tasks)

    def _start(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def answer_http(self, transport: asyncio.Transport, request: HttpRequest) -> None:
        self._start(self._answer_http(transport, request))

    async def _answer_http(self, transport: asyncio.Transport, request: HttpRequest) -> None:
        try:
            response = await self._http(request)
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            response = HttpResponse.text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")
        _answer(transport, response)

    def upgrade(self, transport: asyncio.Transport, request: HttpRequest, head: bytes) -> None:
        """A request for /ws: refused, or handed to picows with the bytes read so far."""
        refused = refuse_upgrade(self.hub, self._origins, request)
        if refused is None and "websocket" not in (request.header("Upgrade") or "").lower():
            refused = HttpResponse.text(HTTPStatus.UPGRADE_REQUIRED,
                                        f"{WS_PATH} is a WebSocket endpoint: use a WebSocket client\n",
                                        (("Upgrade", "websocket"),))
        if refused is not None:
            _answer(transport, refused)
            return
        headers = {"Server": SERVER_NAME}
        subprotocol = choose_subprotocol(request.header_values("Sec-WebSocket-Protocol"))
        if subprotocol is not None:
            headers["Sec-WebSocket-Protocol"] = subprotocol
        listener = PicowsConnection(self, transport)

        def accept(_request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
            return WSUpgradeResponseWithListener(WSUpgradeResponse.create_101_response(headers), listener)

        protocol = _WSProtocol(
            None, None, False,  # no host and path: the server side
            accept,
            _picows_log,
            True,  # disconnect_on_exception: a failure in on_ws_frame closes 1011
            None,  # handshake timeout: the front door had it, and the head is complete
            False, 20.0, 20.0, WSAutoPingStrategy.PING_WHEN_IDLE,  # keepalive is ours (1011)
            True,  # answer pings
            self.hub.config.max_frame_bytes,  # one frame; whole messages are bound above
            None,  # no extra headers (those are for clients)
            READ_BUFFER_BYTES,
        )
        transport.set_protocol(protocol)
        # What picows uses of a transport, with a lingering close: see _PicowsSide.
        protocol.connection_made(cast(asyncio.Transport, _PicowsSide(transport)))
        _feed(protocol, transport, head)

    def connected(self, conn: PicowsConnection) -> None:
        self._start(self._serve(conn))

    async def _serve(self, conn: PicowsConnection) -> None:
        try:
            await self.hub.serve(conn)
        except Exception:
            log.exception("connection from %s failed", conn.remote)
            conn.close(CloseCode.INTERNAL, "internal error")
        finally:
            await conn.finish()


async def start_picows_server(hub: Hub, host: str, port: int, *, reuse_port: bool = False,
                              routes: HttpRoute | None = None) -> PicowsServer:
    """Listen on ``host:port``: WebSocket at ``/ws``, health at ``/healthz``, and ``routes``."""
    server = PicowsServer(hub, routes)
    await server.listen(host, port, reuse_port)
    return server


__all__ = ["PicowsConnection", "PicowsServer", "start_picows_server"]
