"""No loss through faults: a node killed with SIGKILL, a node that dies between storing and
publishing, and Redis restarted, all while clients exchange messages.

The devices keep only the client's part of SPEC section 10 (see clusterhelp.Device);
at the end every acknowledged message must be held by every member device exactly
once, and the store must hold exactly the acknowledged messages.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from clusterhelp import OFFLINE_BOUND_S, Device, NodeProcess, RedisLink, Rig, Traffic, World, until
from services import PrivateRedis

from clipwire.server.broker.redis import RedisBroker

# Scheduling on a loaded two-core machine (three hubs, PostgreSQL, Redis and 200
# clients): the sweep that follows the key's expiry may start this much late.
SCHEDULING_ALLOWANCE_S = 0.5


async def test_a_node_killed_mid_traffic_loses_nothing_and_doubles_nothing(rig: Rig) -> None:
    a, b, c = await rig.start(3)
    world = await World.build(rig, [a, b, c], users=160, dual=40, group_size=8)  # 200 devices
    devices, home = world.devices, world.home
    assert len(devices) == 200 and sum(1 for d in devices if home[d] is b) == 67

    # A friend on node A follows six users who are only on node B, and one on B and C.
    watcher = await rig.join(a, "watcher")
    only_b = [world.first[f"u{i:03}"] for i in range(40, 160) if i % 3 == 1][:6]
    b_and_c = world.first["u001"]  # u001's other device, u001-2, is on node C
    assert all(home[d] is b for d in [*only_b, b_and_c])
    assert home[next(d for d in devices if d.label == "u001-2")] is c
    for device in [*only_b, b_and_c]:
        await device.ok("friend.request", user="watcher")
        await watcher.next_event("friend", user=device.user, state="requested")
        await watcher.ok("friend.accept", user=device.user)
        await watcher.next_event("presence", user=device.user, online=True)

    survivors = [a, c]
    moved_to = {d: survivors[i % 2] for i, d in enumerate(d for d in devices if home[d] is b)}

    def reconnect_url(device: Device) -> str:
        node: NodeProcess = home[device] if home[device].alive() else moved_to[device]
        return node.url

    traffic = Traffic(devices, world.members, reconnect_url=reconnect_url, interval_s=1.0)
    for device, conv, seq, cmid in world.opened:
        traffic.record(device, conv, seq, cmid)
    come_back = asyncio.Event()  # those devices stay away until their offline presence was seen
    for device in [*only_b, b_and_c]:
        traffic.hold_back[device] = come_back
    try:
        traffic.start()
        await asyncio.sleep(2.0)
        sent_before = traffic.sends
        watcher.events.clear()
        killed_at = time.monotonic()
        b.kill()
        # Half the conversations take nothing new from now on: what they miss cannot be
        # revealed by later messages, only by resume, gaps and the nodes' catch-up.
        traffic.quiet = set(sorted(world.members)[::2])

        def offline(device: Device) -> list[float]:
            return [t - killed_at for t, e in watcher.events
                    if e["t"] == "presence" and e["user"] == device.user and e["online"] is False]

        await until(lambda: all(offline(d) for d in only_b), OFFLINE_BOUND_S + 5,
                    lambda: f"offline seen for {[d.user for d in only_b if offline(d)]}")
        shown_offline = sorted(offline(d)[0] for d in only_b)
        come_back.set()
        await asyncio.sleep(1.0)
        await traffic.stop_sending()
        settle_s = await traffic.settle(30)
        stats = await traffic.verify()
    finally:
        await traffic.close()

    print(f"\nnode killed: {stats}; sends before the kill {sent_before}; settled {settle_s:.2f} s after "
          f"the last send; offline shown after {[round(s, 2) for s in shown_offline]} s "
          f"(bound {OFFLINE_BOUND_S:.2f} s)")
    assert stats["reconnects"] >= 67 and all(d.url != b.url for d in devices)
    assert max(shown_offline) <= OFFLINE_BOUND_S + SCHEDULING_ALLOWANCE_S
    # Once each, and the user on two nodes never looked offline.
    assert all(len(offline(d)) == 1 for d in only_b)
    assert not offline(b_and_c)
    for user in (d.user for d in only_b):  # back (on node A or C): online again
        await until(lambda u=user: bool(watcher.of("presence", user=u, online=True)), 5, f"{user} online")
    assert rig.errors() == {}


async def test_what_a_dying_node_stored_but_never_published_reaches_everyone(
    rig: Rig, private_redis: PrivateRedis
) -> None:
    link = await RedisLink(private_redis.port).start()
    try:
        a, c = await rig.start(2)
        [b] = await rig.start(1, redis_url=link.url)  # node B reaches Redis through the link
        alice, carol = await rig.join(a, "alice"), await rig.join(c, "carol")
        bob, bob_phone = await rig.join(b, "bob"), await rig.join(a, "bob", "bob-phone")
        group = (await bob.ok("group.create", members=["alice", "carol"], title="witnesses"))["conv"]
        dm = (await bob.ok("send", to="alice", cmid="dm-1", text="hello alice"))["conv"]
        bob.own(dm, 1, "dm-1")
        in_group, in_dm = [alice, carol, bob, bob_phone], [alice, bob, bob_phone]
        for device in in_group:  # a client writes to a conversation it has heard of
            await device.next_event("conv", conv=group)
        alice.own(group, (await alice.ok("send", conv=group, cmid="g-1", text="hello all"))["seq"], "g-1")
        await until(lambda: all(1 in d.held.get(group, {}) for d in in_group)
                    and all(1 in d.held.get(dm, {}) for d in in_dm), 5,
                    lambda: str({d.label: d.held for d in in_group}))

        link.hold()  # node B can no longer reach Redis: what it stores now is not published
        kept = await bob.ok("send", conv=group, cmid="g-2", text="stored, acknowledged, never published")
        bob.own(group, kept["seq"], "g-2")
        first_try = await bob.ok("send", conv=dm, cmid="dm-2", text="stored; the answer gets lost")
        killed_at = time.monotonic()
        b.kill()

        # bob comes back on node A and resumes; the send whose answer he never saw is
        # retried with its cmid: the same message, not a second one.
        await bob.lost.wait()
        await bob.connect(a.url)
        again = await bob.ok("send", conv=dm, cmid="dm-2", text="stored; the answer gets lost")
        assert (again["conv"], again["seq"]) == (dm, first_try["seq"]) == (dm, 2)
        bob.own(dm, 2, "dm-2")

        # Nobody writes anything more: every device must learn of both messages anyway.
        expected = {group: {1: ("alice", "g-1"), 2: ("bob", "g-2")},
                    dm: {1: ("bob", "dm-1"), 2: ("bob", "dm-2")}}

        def complete() -> bool:
            return (all(d.holding(group) == expected[group] for d in in_group)
                    and all(d.holding(dm) == expected[dm] for d in in_dm))

        await until(complete, OFFLINE_BOUND_S + 5,
                    lambda: str({d.label: (d.holding(group), d.holding(dm)) for d in in_group}))
        took = time.monotonic() - killed_at
        for device in in_group:
            assert device.conflicts == [] and not device.holes()
        assert dm not in carol.held
        print(f"\nstored but unpublished: everyone had both {took:.2f} s after the kill; "
              f"gap events {sum(d.gaps for d in in_group)}, history calls "
              f"{sum(d.history_calls for d in in_group)}")
        assert rig.errors() == {}
    finally:
        await link.close()


async def test_redis_restarted_mid_traffic_loses_nothing_and_doubles_nothing(
    rig: Rig, private_redis: PrivateRedis
) -> None:
    a, b = await rig.start(2)
    world = await World.build(rig, [a, b], users=100, dual=20, group_size=5)  # 120 devices
    pal_a, pal_b = await rig.join(a, "pal-a"), await rig.join(b, "pal-b")
    await pal_b.ok("friend.request", user="pal-a")
    await pal_a.next_event("friend", user="pal-b", state="requested")
    await pal_a.ok("friend.accept", user="pal-b")
    await pal_a.next_event("presence", user="pal-b", online=True)

    traffic = Traffic(world.devices, world.members, reconnect_url=lambda d: world.home[d].url,
                      interval_s=0.8)
    for device, conv, seq, cmid in world.opened:
        traffic.record(device, conv, seq, cmid)
    try:
        traffic.start()
        await asyncio.sleep(1.5)
        await asyncio.to_thread(private_redis.stop)  # SIGKILL: pub/sub and presence keys are gone
        stopped_at = time.monotonic()
        sent_before = traffic.sends
        await asyncio.sleep(1.0)  # the nodes go on storing and answering; nothing crosses
        await asyncio.to_thread(private_redis.start)
        down_s = time.monotonic() - stopped_at
        sent_during = traffic.sends - sent_before
        # From now on half the conversations take nothing new: only the nodes' gap
        # events can tell their members on the other node what the outage hid.
        traffic.quiet = set(sorted(world.members)[::2])
        await asyncio.sleep(1.5)
        await traffic.stop_sending()
        settle_s = await traffic.settle(30)
        stats = await traffic.verify()
    finally:
        await traffic.close()
    print(f"\nredis restarted: {stats}; down {down_s:.2f} s, {sent_during} sends meanwhile; "
          f"settled {settle_s:.2f} s after the last send")
    assert stats["reconnects"] == 0  # the nodes stayed up: no client had to move
    assert stats["gap_events"] > 0

    # Presence lives in Redis: after the restart it must be rebuilt, not lost.
    async def online_as_seen_from_a() -> bool:
        return bool((await pal_a.ok("presence", users=["pal-b"]))["users"][0]["online"])

    for _ in range(40):
        if await online_as_seen_from_a():
            break
        await asyncio.sleep(0.1)
    assert await online_as_seen_from_a(), "pal-b is connected to node B but shown offline after the restart"
    # And leaving is still told (each pooled Redis connection died with the old server).
    await pal_b.drop()
    assert (await pal_a.next_event("presence", user="pal-b"))["online"] is False
    assert rig.errors() == {}


async def test_the_broker_keeps_reading_when_its_first_subscribe_is_slow(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first subscribe opens the pub/sub connection; a reader polling before it exists
    got a RuntimeError from redis-py and stopped for good: that node never again heard
    another. Seen here once in some thirty runs; forced by a slow connect."""
    heard: list[bytes] = []
    listener, talker = RedisBroker(private_redis.url), RedisBroker(private_redis.url)
    await listener.start(lambda channel, data: heard.append(data), lambda: None)
    await talker.start(lambda channel, data: None, lambda: None)
    try:
        pool = listener.client.connection_pool
        connect = pool.get_connection

        async def slow_connect(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0.3)  # a busy machine; the reader polls every 50 ms meanwhile
            return await connect(*args, **kwargs)

        monkeypatch.setattr(pool, "get_connection", slow_connect)
        await listener.subscribe(["c:first"])
        monkeypatch.setattr(pool, "get_connection", connect)
        await asyncio.sleep(0.2)
        talker.publish("c:first", b"are you there")
        await until(lambda: heard == [b"are you there"], 5, "the listener heard nothing")
    finally:
        await listener.close()
        await talker.close()
