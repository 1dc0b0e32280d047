"""A user's limits shared through Redis, seen from one real hub (server/ratelimit.py).

The other nodes are played by a ``RedisUsage`` of the test's own: the counters a
second node adds its spend to, in the Redis (a private redis-server) the hub uses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from services import PrivateRedis
from wire import Dial, HubFactory, RawClient

from clipwire.server import ClipwireServer
from clipwire.server.broker.redis import RedisBroker, RedisUsage
from clipwire.server.ratelimit import ClusterSpend

RATE = 5.0  # per connection, for every kind here; a user gets the same (scale 1)
ALLOWANCE = 10  # the user's burst: one window's allowance across the nodes
WINDOW_S = 2.0


@pytest.fixture
async def other_node(private_redis: PrivateRedis) -> AsyncIterator[RedisUsage]:
    broker = RedisBroker(private_redis.url)
    await broker.start(lambda channel, data: None, lambda: None)
    yield RedisUsage(broker)
    await broker.close()


async def shared_hub(hub_factory: HubFactory, redis: PrivateRedis) -> tuple[ClipwireServer, ClusterSpend]:
    server = await hub_factory(redis_url=redis.url, rate_send_per_s=RATE, rate_history_per_s=RATE,
                               rate_friend_per_s=RATE, rate_user_scale=1.0, rate_strikes_max=1000)
    cluster = server.hub.rates.cluster
    assert cluster is not None
    return server, cluster


async def early_in_a_window() -> int:
    """Wait, if need be, for a window to begin, so the test's requests share one; its number."""
    now = time.time()
    if now % WINDOW_S > 0.4 * WINDOW_S:
        await asyncio.sleep(WINDOW_S - now % WINDOW_S + 0.02)
    return int(time.time() / WINDOW_S)


async def read_back(cluster: ClusterSpend) -> None:
    """Until the hub has flushed what it spent so far and read the others' totals."""
    seen = cluster.flushes
    for _ in range(500):
        if cluster.flushes > seen:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the hub did not flush its spend")


async def total(usage: RedisUsage, kind: str, window: int) -> int:
    return (await usage.add([("alice", kind, window, 0)], 10))[0][0]


@pytest.mark.parametrize("kind", ["send", "history", "friend"])
async def test_what_other_nodes_spent_counts_here(
    hub_factory: HubFactory, dial: Dial, private_redis: PrivateRedis, other_node: RedisUsage,
    kind: str,
) -> None:
    server, cluster = await shared_hub(hub_factory, private_redis)
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")
    conv = (await bob.ok("send", to="alice", cmid="hi", text="hi"))["conv"]
    names = iter(range(1000))

    async def request(client: RawClient) -> dict[str, Any]:
        n = next(names)
        if kind == "send":
            return await client.call("send", conv=conv, cmid=f"m{n}", text="x")
        if kind == "history":
            return await client.call("history", conv=conv)
        return await client.call("friend.request", user=f"friend{n}")

    window = await early_in_a_window()
    await other_node.add([("alice", kind, window, ALLOWANCE - 1)], 10)  # spent elsewhere
    assert (await request(alice))["t"] == "ok"  # the last one left
    await read_back(cluster)
    refused = await request(alice)
    assert refused["code"] == "rate_limited"
    # Not before the window ends and the other node's spend starts to weigh less.
    assert WINDOW_S * 1000 - time.time() % WINDOW_S * 1000 < refused["retry_after_ms"] <= 2 * WINDOW_S * 1000
    assert await total(other_node, kind, window) == ALLOWANCE  # the hub added its one
    assert (await request(bob))["t"] == "ok"  # another user is not held back

    await asyncio.sleep(refused["retry_after_ms"] / 1000 + 0.05)
    assert (await request(alice))["t"] == "ok"  # waiting it out is enough


async def test_a_share_counts_each_target_across_nodes(
    hub_factory: HubFactory, dial: Dial, private_redis: PrivateRedis, other_node: RedisUsage,
) -> None:
    server, cluster = await shared_hub(hub_factory, private_redis)
    alice = await dial(server.url, "alice")
    card = {"id": "v", "url": "https://videos.example/v"}

    window = await early_in_a_window()
    await other_node.add([("alice", "send", window, 6)], 10)
    assert (await alice.call("share", cmid="s1", video=card, to=["u1"]))["t"] == "ok"
    await read_back(cluster)  # 7 of 10 are spent
    too_many = await alice.call("share", cmid="s2", video=card, to=["u1", "u2", "u3", "u4"])
    assert too_many["code"] == "rate_limited" and too_many["retry_after_ms"] > 0
    fits = await alice.call("share", cmid="s3", video=card, to=["u1", "u2", "u3"])
    assert [r.get("error") for r in fits["results"]] == [None, None, None]
    await read_back(cluster)
    assert await total(other_node, "send", window) == ALLOWANCE
