"""Both WebSocket transports, side by side: the same behaviour on the wire.

The whole suite runs against one transport (``CLIPWIRE_TRANSPORT``, websockets by
default: see tests/wire.py); these tests run against both in every run. Frames the
``websockets`` client refuses to send (stray continuations, reserved bits, bad
UTF-8) and a client that never answers pings are made by hand with :class:`RawSocket`.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus
from wire import Dial, HubFactory, RawClient, http_get, token

from clipwire.protocol import decode, encode
from clipwire.server import ClipwireServer, HubConfig
from clipwire.server.config import ConfigError

TRANSPORTS = ["websockets", "picows"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class RawSocket:
    """A WebSocket client written by hand: any frame, read at the test's pace."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, path: str = "/ws") -> RawSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(reader, writer)

    def frame(self, opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> None:
        mask = os.urandom(4)
        size = len(payload)
        head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
        if size < 126:
            head += bytes([0x80 | size])
        elif size < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", size)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    async def read_frame(self, timeout: float = 5) -> tuple[int, bytes]:
        async with asyncio.timeout(timeout):
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(size)

    async def close_code(self, timeout: float = 5) -> int:
        """Skip frames until the hub's close frame; its code."""
        while True:
            opcode, payload = await self.read_frame(timeout)
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])

    async def hello(self, user: str) -> None:
        self.frame(0x2, encode({"t": "hello", "id": 1, "v": 1, "token": token(user)}))
        opcode, payload = await self.read_frame()
        assert opcode == 0x2 and decode(payload)["t"] == "ok"

    def close(self) -> None:
        self.writer.close()



async def test_messages_travel_and_resume(hub_factory: HubFactory, dial: Dial, transport: str) -> None:
    hub = await hub_factory(transport=transport)
    alice, bob = await dial(hub.url, "alice"), await dial(hub.url, "bob")
    first = await alice.ok("send", to="bob", cmid="c1", text="one")
    assert (await bob.event("msg", conv=first["conv"]))["text"] == "one"
    await bob.close()
    for n in (2, 3):
        await alice.ok("send", conv=first["conv"], cmid=f"c{n}", text=str(n))
    again = await dial(hub.url, "bob", resume={first["conv"]: 1})
    assert [(await again.event("msg", conv=first["conv"]))["seq"] for _ in range(2)] == [2, 3]


async def test_a_burst_arrives_whole_and_in_order(hub_factory: HubFactory, dial: Dial,
                                                  transport: str) -> None:
    # Far more than the 16 messages a connection may have waiting: reading the socket
    # pauses and resumes many times on the way.
    hub = await hub_factory(transport=transport)
    alice = await dial(hub.url, "alice")
    ids = [await alice.send_request("send", to="bob", cmid=f"m{n}", text=f"{n}") for n in range(400)]
    seqs = [(await alice.reply(rid))["seq"] for rid in ids]
    assert seqs == list(range(1, 401))


async def test_a_fragmented_message_is_reassembled(hub_factory: HubFactory, dial: Dial,
                                                   transport: str) -> None:
    hub = await hub_factory(transport=transport)
    alice = await dial(hub.url, "alice")
    data = encode({"t": "send", "id": 7, "to": "bob", "cmid": "f", "text": "x" * 3000})
    await alice.ws.send([data[:1000], data[1000:2000], data[2000:]])
    reply = await alice.reply(7)
    assert reply["t"] == "ok" and reply["seq"] == 1


@pytest.mark.parametrize(("case", "code"), [
    ("not msgpack", 4003), ("text frame", 4003), ("one frame too big", 1009),
    ("fragments too big together", 1009),
])
async def test_bad_frames_close_with_the_documented_code(
    hub_factory: HubFactory, dial: Dial, transport: str, case: str, code: int
) -> None:
    hub = await hub_factory(transport=transport, max_frame_bytes=1024)
    bystander = await dial(hub.url, "bystander")
    client = await dial(hub.url, "alice")
    if case == "not msgpack":
        await client.send_raw(b"\xc1")
    elif case == "text frame":
        await client.send_raw("hello")
    elif case == "one frame too big":
        await client.send_raw(encode({"t": "ping", "id": 9, "pad": "x" * 2000}))
    else:
        await client.ws.send([b"\x80" * 600, b"\x80" * 600])
    assert (await client.closed())[0] == code
    assert (await bystander.ok("ping"))["t"] == "ok"


@pytest.mark.parametrize(("case", "code"), [
    ("continuation without a start", 1002), ("reserved bit", 1002), ("text not UTF-8", 1007),
    ("a new message inside a fragmented one", 1002),
])
async def test_frames_that_break_rfc_6455_close_the_connection(
    hub_factory: HubFactory, transport: str, case: str, code: int
) -> None:
    hub = await hub_factory(transport=transport)
    raw = await RawSocket.open(hub.port)
    await raw.hello("alice")
    if case == "continuation without a start":
        raw.frame(0x0, b"\x80")
    elif case == "reserved bit":
        raw.frame(0x2, encode({"t": "ping", "id": 2}), rsv=4)
    elif case == "text not UTF-8":
        raw.frame(0x1, b"\xff\xfe")
    else:
        raw.frame(0x2, b"\x82", fin=False)
        raw.frame(0x2, b"\x80")
    assert await raw.close_code() == code
    raw.close()


async def test_a_client_close_is_answered_and_ends_the_session(
    hub_factory: HubFactory, dial: Dial, transport: str
) -> None:
    hub = await hub_factory(transport=transport)
    alice = await dial(hub.url, "alice")
    await alice.ws.close(4321, "bye")
    assert alice.ws.protocol.close_rcvd is not None and alice.ws.protocol.close_rcvd.code == 4321
    async with asyncio.timeout(5):
        while hub.hub.sessions.get("alice"):  # noqa: ASYNC110 - polling the hub's state
            await asyncio.sleep(0.02)


async def test_pings_are_answered(hub_factory: HubFactory, dial: Dial, transport: str) -> None:
    hub = await hub_factory(transport=transport)
    alice = await dial(hub.url, "alice")
    pong = await alice.ws.ping(b"are you there")
    await asyncio.wait_for(pong, 5)


async def test_a_client_that_stops_reading_is_closed_4009(
    hub_factory: HubFactory, dial: Dial, transport: str
) -> None:
    hub = await hub_factory(transport=transport, send_buffer_bytes=64 * 1024)
    alice = await dial(hub.url, "alice")
    stalled = await RawClient.open(hub.url, max_queue=1)
    await stalled.hello(token("carol"))
    conv = (await alice.ok("group.create", members=["carol"], title="big"))["conv"]
    stalled.ws.transport.pause_reading()
    (carol,) = hub.hub.sessions["carol"]
    for n in range(5000):
        await alice.ok("send", conv=conv, cmid=f"m{n}", text="x" * 3900)
        if carol.conn._close is not None:
            break
    assert carol.conn._close is not None and carol.conn._close[0] == 4009
    assert carol.conn.transport.get_write_buffer_size() <= 64 * 1024 + 8 * 1024
    await asyncio.sleep(CLOSE_WAIT_S)  # reading later still brings the close frame
    stalled.ws.transport.resume_reading()
    assert (await stalled.closed(timeout=20))[0] == 4009
    assert (await alice.ok("ping"))["t"] == "ok"


CLOSE_WAIT_S = 2.5  # longer than the closing handshake's own timeout (2 s)


async def test_origins_and_a_full_hub_are_refused_during_the_upgrade(
    hub_factory: HubFactory, transport: str
) -> None:
    hub = await hub_factory(transport=transport, allowed_origins="https://app.example",
                            max_connections=2)
    ok = await RawClient.open(hub.url, origin="https://app.example")
    with pytest.raises(InvalidStatus) as refused:
        await ws_connect(hub.url, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    native = await RawClient.open(hub.url)  # no Origin: served
    await native.hello(token("bob"))
    with pytest.raises(InvalidStatus) as full:
        await ws_connect(hub.url)
    assert full.value.response.status_code == 503
    await ok.close()
    await native.close()


async def test_a_handshake_that_never_ends_is_dropped(hub_factory: HubFactory, dial: Dial,
                                                      transport: str) -> None:
    hub = await hub_factory(transport=transport, handshake_timeout_s=0.5)
    slow = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        slow.append((reader, writer))
    alice = await dial(hub.url, "alice")
    assert (await alice.ok("ping"))["t"] == "ok"
    async with asyncio.timeout(5):
        for reader, writer in slow:
            assert b"101" not in await reader.read()
            writer.close()


async def test_a_peer_that_never_answers_pings_is_dropped_with_1011(
    hub_factory: HubFactory, transport: str
) -> None:
    hub = await hub_factory(transport=transport, ping_interval_s=0.2, ping_timeout_s=0.2)
    raw = await RawSocket.open(hub.port)
    await raw.hello("frozen")
    # The pings are read here, never answered.
    assert await raw.close_code(timeout=4) == 1011
    async with asyncio.timeout(4):
        while hub.hub.sessions.get("frozen"):  # noqa: ASYNC110 - polling the hub's state
            await asyncio.sleep(0.05)
    raw.close()


async def test_http_routes(hub_factory: HubFactory, transport: str) -> None:
    hub = await hub_factory(transport=transport)
    assert (await asyncio.to_thread(http_get, hub.port, "/healthz?probe=1"))[::2] == (200, "ok\n")
    assert (await asyncio.to_thread(http_get, hub.port, "/readyz"))[::2] == (200, "ready\n")
    status, content_type, body = await asyncio.to_thread(http_get, hub.port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    assert "clipwire_connections" in body
    status, _, body = await asyncio.to_thread(http_get, hub.port, "/elsewhere")
    assert status == 404 and "/ws" in body
    # /ws without an upgrade: a WebSocket client is needed.
    assert (await asyncio.to_thread(http_get, hub.port, "/ws"))[0] == 426


async def test_readyz_reports_a_store_that_does_not_answer(hub_factory: HubFactory,
                                                           transport: str) -> None:
    hub = await hub_factory(transport=transport)
    await hub.store.close()  # the store is gone: /readyz says so, /healthz does not care
    status, _, body = await asyncio.to_thread(http_get, hub.port, "/readyz")
    assert status == 503 and body.startswith("store: ")
    assert (await asyncio.to_thread(http_get, hub.port, "/healthz"))[0] == 200
    await hub.store.open()


async def test_subprotocol_when_offered_none_otherwise(hub_factory: HubFactory, dial: Dial,
                                                       transport: str) -> None:
    hub = await hub_factory(transport=transport)
    offered = await dial(hub.url, ws_options={"subprotocols": ["chat.v9", "clipwire.v1"]})
    assert offered.ws.subprotocol == "clipwire.v1"
    plain = await dial(hub.url, ws_options={"compression": "deflate"})
    assert plain.ws.subprotocol is None
    assert "Sec-WebSocket-Extensions" not in plain.ws.response.headers
    assert (await plain.hello(token("alice")))["user"] == "alice"


async def test_shutdown_closes_every_client_with_1001(hub_factory: HubFactory, dial: Dial,
                                                      transport: str) -> None:
    server = await hub_factory(transport=transport)
    alice, waiting = await dial(server.url, "alice"), await dial(server.url)
    async with asyncio.timeout(5):
        await server.close()
    assert (await alice.closed())[0] == 1001
    assert (await waiting.closed())[0] == 1001


@pytest.mark.parametrize(("settings", "message"), [
    ({"transport": "tornado"}, "CLIPWIRE_TRANSPORT must be websockets or picows"),
    ({"transport": "picows", "permessage_deflate": True}, "the picows transport does not compress"),
])
def test_transport_settings_that_cannot_work(settings: dict[str, object], message: str) -> None:
    config = HubConfig(secret="s" * 32, **settings)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        config.check()


async def test_picows_answers_other_methods_and_odd_requests(hub_factory: HubFactory) -> None:
    # websockets refuses these before the hub sees them; the picows transport reads
    # the request head itself, so it answers them itself.
    hub: ClipwireServer = await hub_factory(transport="picows")

    async def ask(request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        writer.write(request)
        try:
            return await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()

    assert (await ask(b"POST /healthz HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")).startswith(
        b"HTTP/1.1 405 ")
    # A body the hub never reads does not reset the connection before the answer arrives.
    body = b"x" * 1_000_000
    assert (await ask(b"POST /healthz HTTP/1.1\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
            ).startswith(b"HTTP/1.1 405 ")
    assert (await ask(b"GET /healthz HTTP/1.0\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    assert (await ask(b"NONSENSE\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
    assert (await ask(b"GET / HTTP/1.1\r\nX: " + b"y" * 20_000 + b"\r\n\r\n")).startswith(
        b"HTTP/1.1 431 ")
