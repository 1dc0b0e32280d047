"""The contract every ``Broker`` keeps, run against the memory and Redis brokers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from services import PrivateRedis, require

from clipwire.server.broker.base import Broker
from clipwire.server.broker.memory import MemoryBroker, MemoryBus
from clipwire.server.broker.redis import BrokerUnavailable, RedisBroker


class Node:
    """A broker with what it received, as a hub node would hold it."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.got: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.resets = 0
        self.reset_seen = asyncio.Event()

    async def start(self) -> None:
        await self.broker.start(lambda ch, data: self.got.put_nowait((ch, data)), self._reset)

    def _reset(self) -> None:
        self.resets += 1
        self.reset_seen.set()

    async def next(self, timeout: float = 5.0) -> tuple[str, bytes]:
        return await asyncio.wait_for(self.got.get(), timeout)

    async def nothing(self, wait_s: float = 0.3) -> None:
        await asyncio.sleep(wait_s)
        assert self.got.empty(), self.got.get_nowait()


NodeFactory = Callable[[], Awaitable[Node]]


@pytest.fixture(params=["memory", "redis"])
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[NodeFactory]:
    started: list[Node] = []
    bus = MemoryBus()
    url = require("redis") if request.param == "redis" else ""

    async def make() -> Node:
        node = Node(MemoryBroker(bus) if request.param == "memory" else RedisBroker(url))
        await node.start()
        started.append(node)
        return node

    yield make
    for node in started:
        await node.broker.close()


async def test_publish_reaches_every_subscriber_once(nodes: NodeFactory) -> None:
    a, b, c = await nodes(), await nodes(), await nodes()
    channel = f"c:test-{id(a)}"
    await a.broker.subscribe([channel])
    await b.broker.subscribe([channel, channel])
    c.broker.publish(channel, b"one")
    c.broker.publish(channel, b"two")
    for node in (a, b):
        assert await node.next() == (channel, b"one")
        assert await node.next() == (channel, b"two")
    await c.nothing()
    await a.nothing()


async def test_unsubscribed_channels_are_not_delivered(nodes: NodeFactory) -> None:
    a, b = await nodes(), await nodes()
    keep, drop = f"c:keep-{id(a)}", f"c:drop-{id(a)}"
    await a.broker.subscribe([keep, drop])
    await a.broker.unsubscribe([drop])
    b.broker.publish(drop, b"gone")
    b.broker.publish(keep, b"kept")
    assert await a.next() == (keep, b"kept")
    await a.nothing()


async def test_many_events_in_a_burst_keep_their_order(nodes: NodeFactory) -> None:
    a, b = await nodes(), await nodes()
    channel = f"c:burst-{id(a)}"
    await a.broker.subscribe([channel])
    for i in range(2000):
        b.broker.publish(channel, str(i).encode())
    got = [int((await a.next())[1]) for _ in range(2000)]
    assert got == list(range(2000))


async def test_redis_unreachable_at_start_says_where() -> None:
    broker = RedisBroker("redis://127.0.0.1:1/0")
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:1"):
        await broker.start(lambda ch, d: None, lambda: None)


@contextlib.asynccontextmanager
async def linked(url: str, channel: str, **listener: Any) -> AsyncIterator[tuple[Node, Node]]:
    """A listener following ``channel`` and a talker, one event already across."""
    a, b = Node(RedisBroker(url, **listener)), Node(RedisBroker(url))
    try:
        await a.start()
        await b.start()
        await a.broker.subscribe([channel])
        b.broker.publish(channel, b"before")
        assert await a.next() == (channel, b"before")
        yield a, b
    finally:
        await a.broker.close()
        await b.broker.close()


async def delivered_again(a: Node, b: Node, channel: str, lost: bytes | None = None) -> None:
    """Publish until one gets through (connections come back on their next use)."""
    for _ in range(100):
        b.broker.publish(channel, b"after")
        try:
            _channel, data = await a.next(timeout=0.2)
        except TimeoutError:
            continue
        assert data in (b"after", lost)
        if data == b"after":
            return
    raise AssertionError("no delivery after the reconnect")


async def test_redis_restart_is_reported_and_subscriptions_come_back() -> None:
    redis = PrivateRedis()
    redis.start()
    try:
        async with linked(redis.url, "c:x") as (a, b):
            redis.stop()
            b.broker.publish("c:x", b"lost")  # at-most-once: this one is gone
            await asyncio.sleep(0.5)
            redis.start()
            await asyncio.wait_for(a.reset_seen.wait(), 15)
            await delivered_again(a, b, "c:x", lost=b"lost")
    finally:
        redis.stop()


async def test_a_pubsub_connection_gone_silent_is_dropped_and_comes_back(private_redis: PrivateRedis) -> None:
    """Nothing answers the keepalive pings (Redis paused, as a partition would look):
    the subscriber reconnects, reports the loss, and is delivered to again."""
    async with (linked(private_redis.url, "c:quiet", keepalive_s=0.2) as (a, b),
                aioredis.Redis.from_url(private_redis.url) as admin):
        await admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")
        await asyncio.wait_for(a.reset_seen.wait(), 10)
        await delivered_again(a, b, "c:quiet")


async def test_a_publishing_connection_closed_by_redis_is_noticed_before_the_next_publish(
    private_redis: PrivateRedis,
) -> None:
    """Redis closes the publisher's connection (a proxy's idle timeout, CLIENT KILL): the
    next publish must not vanish into the half-closed socket, as no reply would tell."""
    async with (linked(private_redis.url, "c:kill") as (a, b),
                aioredis.Redis.from_url(private_redis.url) as admin):
        killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert killed >= 1
        await asyncio.sleep(0.3)
        b.broker.publish("c:kill", b"after")  # once: a second try would hide the loss
        assert await a.next(timeout=3) == ("c:kill", b"after")
