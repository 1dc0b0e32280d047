"""A bounded fuzz run against a live hub process (issue 8, point 7).

Fifty connections send random and mutated frames for a few seconds: requests of every
type with plausible or junk fields, byte-mutated requests, text frames, frames over
the byte limit, nesting far past ``max_depth``, arrays past ``max_array_len``, non-string
keys, ``bin`` and ``ext`` values, hostile hellos (no hello, a forged or expired token,
``v: 2``). A connection the hub closes connects again. Afterwards:

- the hub process is alive, answered no request with ``internal`` (metrics and replies),
  closed no connection with 1011, and logged no error or traceback;
- every close code was one the SPEC gives for what was sent;
- a normal client still says hello, sends a DM that its peer receives, and reads it
  back with ``history``;
- the hub's RSS (``/proc/<pid>/status``) grew less than ``RSS_BOUND_MB`` over its
  baseline, taken after a warm-up in which the same fifty connections were served once.

It runs against a SQLite hub and, with PostgreSQL reachable, a PostgreSQL one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fuzzframes import HostileFrames
from services import fresh_schema, require
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from wire import SECRET, HubProcess, RawClient, history_all, token

from benchmarks.faults import rss_bytes
from clipwire.protocol import FrameError, Limits, decode
from clipwire.server import sign_token

CONNECTIONS = 50
FUZZ_S = 4.0
MAX_FRAMES_PER_CONNECTION = 2_000
RSS_BOUND_MB = 60
# What the hub may close a fuzzing connection with (SPEC section 5).
EXPECTED_CLOSES = {1000, 1009, 4001, 4002, 4003, 4008, 4009}
_READ_LIMITS = Limits(max_frame_bytes=1 << 26, max_str_len=1 << 24, max_array_len=1 << 20,
                      max_map_len=1 << 20, max_depth=32)


class Tally:
    def __init__(self) -> None:
        self.sent = Counter[str]()
        self.closes = Counter[int | None]()
        self.errors = Counter[str]()
        self.replies = 0
        self.connect_failures: list[str] = []
        self.unreadable: list[str] = []


def _hostile_hello(rng: random.Random, user: str) -> dict[str, Any] | bytes:
    forged = sign_token("not-the-secret-not-the-secret-not-the-secret", user)
    expired = sign_token(SECRET, user, ttl_s=-60)
    return rng.choice([
        {"t": "hello", "id": 1, "v": 1, "token": forged},
        {"t": "hello", "id": 1, "v": 1, "token": expired},
        {"t": "hello", "id": 1, "v": 1, "token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
        {"t": "hello", "id": 1, "v": 2, "token": token(user)},
        {"t": "hello", "id": "1", "v": 1, "token": token(user)},
        {"t": "hello", "id": 1, "v": 1, "token": token(user), "resume": {"x": -1}},
        {"t": "send", "id": 1, "to": "x", "cmid": "c", "text": "before hello"},
        b"\xc1",
    ])


async def _fuzz_one(url: str, index: int, users: list[str], deadline: float, tally: Tally,
                    seed: int) -> None:
    rng = random.Random(seed * 1000 + index)
    user = users[index]
    gen = HostileFrames(rng, users)
    # Most connections are mostly well-formed, so that requests reach the handlers;
    # some send a frame that ends the connection every few frames.
    killers = rng.choice([0.01, 0.01, 0.05, 0.3])
    frames = 0
    while time.monotonic() < deadline and frames < MAX_FRAMES_PER_CONNECTION:
        try:
            ws = await connect(url, max_size=None, open_timeout=10, close_timeout=2, ping_interval=None)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            tally.connect_failures.append(repr(exc))
            await asyncio.sleep(0.1)
            continue
        reader = asyncio.get_running_loop().create_task(_read(ws, gen, tally))
        try:
            if rng.random() < 0.85:
                await ws.send(gen_pack({"t": "hello", "id": 0, "v": 1, "token": token(user), "device": "fz"}))
            else:
                hostile = _hostile_hello(rng, user)
                await ws.send(hostile if isinstance(hostile, bytes) else gen_pack(hostile))
            while time.monotonic() < deadline and frames < MAX_FRAMES_PER_CONNECTION:
                data = gen.frame(64 * 1024, killers)
                tally.sent["text" if isinstance(data, str) else "binary"] += 1
                frames += 1
                await ws.send(data)
                if frames % 8 == 0:
                    await asyncio.sleep(0.002)  # let the other fifty have a turn
        except ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3)
            await reader
        rcvd = ws.protocol.close_rcvd
        tally.closes[rcvd.code if rcvd else None] += 1


def gen_pack(frame: dict[str, Any]) -> bytes:
    from fuzzframes import pack

    return pack(frame)


async def _read(ws: ClientConnection, gen: HostileFrames, tally: Tally) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for data in ws:
            if not isinstance(data, bytes):
                tally.unreadable.append(f"text frame {data[:60]!r}")
                continue
            try:
                frame = decode(data, _READ_LIMITS)
            except FrameError as exc:
                tally.unreadable.append(str(exc))
                continue
            tally.replies += 1
            if frame["t"] == "error":
                tally.errors[frame.get("code", "?")] += 1
            gen.learn(frame)


def _metric(port: int, name: str, labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _normal_client_is_served(url: str, round_: int) -> None:
    alice, bob = await RawClient.open(url), await RawClient.open(url)
    try:
        await alice.hello(token(f"plain-alice-{round_}"))
        await bob.hello(token(f"plain-bob-{round_}"))
        sent = await alice.ok("send", to=f"plain-bob-{round_}", cmid="after-fuzz", text="still here?")
        msg = await bob.event("msg", conv=sent["conv"], seq=sent["seq"])
        assert msg["text"] == "still here?"
        stored = await history_all(bob, sent["conv"])
        assert [m["cmid"] for m in stored][-1] == "after-fuzz"
    finally:
        await alice.close()
        await bob.close()


def _start_logging_to(hub: HubProcess, log: Path) -> None:
    """Start ``hub`` with its stderr (the log) in ``log``: HubProcess lets the child
    inherit this process's stderr, so point that at the file while it starts."""
    with log.open("a") as handle:
        saved = os.dup(2)
        os.dup2(handle.fileno(), 2)
        try:
            hub.start()
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@pytest.fixture(params=["sqlite", "postgres"])
async def fuzz_hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[HubProcess, Path]]:
    log = tmp_path / "hub.log"
    if request.param == "sqlite":
        hub = HubProcess(tmp_path / "fuzz.db")
        _start_logging_to(hub, log)
        try:
            yield hub, log
        finally:
            hub.stop()
        return
    async with fresh_schema(require("postgres")) as dsn:
        hub = HubProcess(tmp_path / "unused.db", extra_env={
            "CLIPWIRE_DATABASE_URL": dsn, "CLIPWIRE_MIGRATE_ON_START": "true"})
        _start_logging_to(hub, log)
        try:
            yield hub, log
        finally:
            hub.stop()


async def test_hostile_frames_from_fifty_connections_leave_the_hub_serving_within_its_memory(
    fuzz_hub: tuple[HubProcess, Path]
) -> None:
    hub, log = fuzz_hub
    assert hub.proc is not None
    users = [f"fuzz-{i:02}" for i in range(CONNECTIONS)] + ["nobody", "plain-alice-0"]
    # Warm-up: the same connections served once, so that the baseline holds what any
    # hub that served them holds (imports, caches, buffers), then a normal client.
    warm = Tally()
    deadline = time.monotonic() + 0.5
    await asyncio.gather(*(_fuzz_one(hub.url, i, users, deadline, warm, seed=1) for i in range(CONNECTIONS)))
    await _normal_client_is_served(hub.url, 0)
    await asyncio.sleep(0.5)
    baseline = rss_bytes(hub.proc.pid)

    tally = Tally()
    started = time.monotonic()
    await asyncio.gather(*(_fuzz_one(hub.url, i, users, started + FUZZ_S, tally, seed=2)
                           for i in range(CONNECTIONS)))
    fuzz_s = time.monotonic() - started
    await asyncio.sleep(0.5)

    assert hub.proc.poll() is None, "the hub process died"
    await _normal_client_is_served(hub.url, 1)
    grown_mb = (rss_bytes(hub.proc.pid) - baseline) / 2**20
    internal = _metric(hub.port, "clipwire_errors_total", 'code="internal"')
    logged = log.read_text(errors="replace")
    problems = [line for line in logged.splitlines()
                if " ERROR " in line or " CRITICAL " in line or "Traceback" in line]
    sent = sum(tally.sent.values())
    store = "postgres" if "CLIPWIRE_DATABASE_URL" in hub.extra_env else "sqlite"
    print(f"\nfuzz ({store}): {sent} frames ({tally.sent['text']} text) from {CONNECTIONS} connections in "
          f"{fuzz_s:.1f} s, {tally.replies} frames back, closes {dict(tally.closes)}, "
          f"errors {dict(tally.errors)}; RSS {baseline / 2**20:.1f} MB -> +{grown_mb:.1f} MB "
          f"(bound {RSS_BOUND_MB} MB)")
    assert sent > 2_000 and tally.replies > 500
    assert not problems, "\n".join(problems[:20])
    assert internal == 0 and tally.errors["internal"] == 0
    assert set(tally.closes) <= EXPECTED_CLOSES, tally.closes
    assert not tally.unreadable, tally.unreadable[:5]
    assert len(tally.connect_failures) < 5, tally.connect_failures[:5]
    assert grown_mb < RSS_BOUND_MB
