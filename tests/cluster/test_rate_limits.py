"""A user's rate limits hold across hub processes sharing one Redis (server/ratelimit.py).

Counted, never timed: the clock only says which limit windows the sending spanned.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
from clusterhelp import Device, Rig, stored, until
from services import PrivateRedis

from clipwire.server.ratelimit import FLUSH_S

RATE = 5.0  # sends a second per connection (burst 10)
USER_SCALE = 1.0  # a user's devices together: one connection's rate and burst
USER_RATE = RATE * USER_SCALE
ALLOWANCE = 2 * USER_RATE  # a user's burst: the allowance of one window, across the nodes
WINDOW_S = ALLOWANCE / USER_RATE
SENDING_S = 6.0
ROUND_TRIP_S = 0.1  # generous for loopback


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Low limits for the nodes started next; refusals never close the connection (4008)."""
    monkeypatch.setenv("CLIPWIRE_RATE_SEND_PER_S", str(RATE))
    monkeypatch.setenv("CLIPWIRE_RATE_USER_SCALE", str(USER_SCALE))
    monkeypatch.setenv("CLIPWIRE_RATE_STRIKES_MAX", "1000000")


async def test_a_user_on_two_nodes_gets_one_users_allowance(rig: Rig, limits: None) -> None:
    a, b = await rig.start(2)
    bob = await rig.join(a, "bob")
    phone = await rig.join(a, "alice", "alice-phone")
    laptop = await rig.join(b, "alice", "alice-laptop")
    conv = (await bob.ok("send", to="alice", cmid="hello", text="hi alice"))["conv"]

    accepted: dict[str, int] = {}  # cmid -> seq
    by_device = {phone.label: 0, laptop.label: 0}
    refusals: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []

    async def blast(device: Device, deadline: float) -> None:
        """Send as fast as the replies come, never waiting out a refusal."""
        n = 0
        while time.time() < deadline:
            n += 1
            cmid = f"{device.label}-{n}"
            reply = await device.attempt("send", conv=conv, cmid=cmid, text=f"text {n}")
            if reply["t"] == "ok":
                accepted[cmid] = reply["seq"]
                by_device[device.label] += 1
                device.own(conv, reply["seq"], cmid)
            elif reply.get("code") == "rate_limited":
                refusals.append(reply)
            else:
                other.append(reply)

    if time.time() % WINDOW_S > 0.2 * WINDOW_S:  # start early in a window: 6 s span 4 of them
        await asyncio.sleep(WINDOW_S - time.time() % WINDOW_S + 0.02)
    started = time.time()
    await asyncio.gather(blast(phone, started + SENDING_S), blast(laptop, started + SENDING_S))
    ended = time.time()

    assert other == []
    assert all(isinstance(r["retry_after_ms"], int) and r["retry_after_ms"] > 0 for r in refusals)
    assert all(by_device.values()), by_device  # both nodes accepted some

    # Every send was answered between started and ended, so it fell in one of these windows
    # (the nodes number windows from the same clock as this test: one machine).
    windows = math.floor(ended / WINDOW_S) - math.floor(started / WINDOW_S) + 1
    # The documented bound (ratelimit.py, SCALING.md): the allowance of every window, plus
    # per window what the other node accepts unseen (user rate x (2 flushes + a round
    # trip)), plus once one local burst of the other node (both devices start at once).
    slack = ALLOWANCE + windows * math.ceil(USER_RATE * (2 * FLUSH_S + ROUND_TRIP_S))
    limit = ALLOWANCE * windows + slack
    # Per-node limits only: each node lets its connection spend its burst plus its rate.
    per_node_only = 2 * (2 * RATE + RATE * (ended - started))
    assert limit < per_node_only  # so this test tells the two apart (58 against 80)
    assert len(accepted) <= limit, (len(accepted), limit, by_device, windows)
    assert len(refusals) > len(accepted)

    # Nothing over the limit was stored: the conversation holds exactly the accepted sends.
    store = await stored(bob, conv)
    assert store.pop(1) == ("bob", "hello")
    assert {cmid: seq for seq, (sender, cmid) in store.items()} == accepted
    assert {sender for sender, _ in store.values()} == {"alice"}


async def test_without_redis_each_node_keeps_its_local_limits(
    rig: Rig, private_redis: PrivateRedis, limits: None
) -> None:
    (a,) = await rig.start(1)
    bob = await rig.join(a, "bob")
    alice = await rig.join(a, "alice")
    conv = (await bob.ok("send", to="alice", cmid="hello", text="hi alice"))["conv"]
    assert (await alice.ok("send", conv=conv, cmid="before", text="x"))["seq"] == 2

    def logged(text: str) -> int:
        return sum(text in line for line in a.log().splitlines())

    down, back = "shared counters unavailable", "shared counters answer again"
    await asyncio.to_thread(private_redis.stop)
    # Sends go on, within the local buckets (a refusal is waited out and retried); the
    # limiter never makes one fail.
    for n in range(15):
        reply = await alice.request("send", conv=conv, cmid=f"down-{n}", text="x")
        assert reply["t"] == "ok", reply
    await until(lambda: logged(down) > 0, 10, "the node logged that Redis is away")
    for n in range(10):
        assert (await alice.request("send", conv=conv, cmid=f"still-{n}", text="x"))["t"] == "ok"
    assert alice.rate_limited > 0  # the local limits held meanwhile

    await asyncio.to_thread(private_redis.start)
    sent = 0

    async def send_until_shared_again() -> bool:
        nonlocal sent
        sent += 1
        reply = await alice.request("send", conv=conv, cmid=f"back-{sent}", text="x")
        assert reply["t"] == "ok", reply
        return logged(back) > 0

    for _ in range(100):
        if await send_until_shared_again():
            break
        await asyncio.sleep(0.1)
    assert (logged(down), logged(back)) == (1, 1)  # said once, however many flushes failed
    store = await stored(bob, conv)
    assert len(store) == 2 + 15 + 10 + sent
