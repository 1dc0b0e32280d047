"""Connections that misbehave below the protocol: slowloris, frozen peers, compression bombs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import zlib

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from wire import SECRET, Dial, HubFactory, RawClient, token

from clipwire.protocol import encode


async def test_slowloris_sockets_are_closed_and_real_clients_still_connect(
    hub_factory: HubFactory, dial: Dial
) -> None:
    hub = await hub_factory(handshake_timeout_s=1.0)
    slow: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(200):
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        writer.write(b"GET /ws HTTP/1.1\r\n")  # and then one byte a second, never finishing
        slow.append((reader, writer))

    async def dribble() -> None:
        for _ in range(4):
            await asyncio.sleep(0.5)
            for _, writer in slow:
                if not writer.is_closing():
                    writer.write(b"X")

    dribbler = asyncio.create_task(dribble())
    closed = 0
    try:
        alice = await dial(hub.url, "alice")  # a real client gets in meanwhile
        assert (await alice.ok("ping"))["t"] == "ok"
        async with asyncio.timeout(10):
            for reader, _ in slow:
                try:
                    data = await reader.read()  # EOF once the hub gives up on the handshake
                except ConnectionResetError:
                    # Closed with a dribbled byte still unread: the kernel sends a reset.
                    data = b""
                closed += 1
                assert b"101 Switching Protocols" not in data
    finally:
        dribbler.cancel()
        for _, writer in slow:
            writer.close()
    assert closed == 200


async def test_a_frozen_peer_is_dropped_within_the_keepalive_bound(hub_factory: HubFactory) -> None:
    hub = await hub_factory(ping_interval_s=0.3, ping_timeout_s=0.3)
    script = (
        "import asyncio, sys\n"
        "from websockets.asyncio.client import connect\n"
        "from clipwire.protocol import encode\n"
        "async def main():\n"
        "    ws = await connect(sys.argv[1])\n"
        f"    await ws.send(encode({{'t': 'hello', 'id': 1, 'v': 1, 'token': {token('frozen')!r}}}))\n"
        "    await ws.recv()\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, hub.url,
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).strip() == b"ready"
    assert "frozen" in hub.hub.sessions
    os.kill(proc.pid, signal.SIGSTOP)  # the phone froze: no pongs any more
    try:
        # bound: ping interval + ping timeout (0.6 s) + the closing handshake's 2 s
        async with asyncio.timeout(4):
            while "frozen" in hub.hub.sessions:  # noqa: ASYNC110 - polling the hub's state
                await asyncio.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        await proc.wait()


async def test_a_compression_bomb_cannot_inflate_past_the_frame_limit(
    hub_factory: HubFactory, dial: Dial
) -> None:
    # Compression is the websockets transport's (picows refuses the setting: test_transports.py).
    hub = await hub_factory(transport="websockets", permessage_deflate=True, max_frame_bytes=16 * 1024)
    bystander = await dial(hub.url, "bystander")
    ws = await ws_connect(hub.url, compression="deflate", max_size=None)
    await ws.send(encode({"t": "hello", "id": 1, "v": 1, "token": token("bomber")}))
    await ws.recv()
    bomb = encode({"t": "send", "id": 2, "to": "x", "cmid": "b", "text": "a" * 3_000_000})
    assert len(zlib.compress(bomb)) < 20_000  # small on the wire, 3 MB inflated
    await ws.send(bomb)
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert (await bystander.ok("ping"))["t"] == "ok"
    assert SECRET and RawClient
