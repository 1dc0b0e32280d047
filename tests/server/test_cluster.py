"""Several hubs joined by a broker: every event reaches the right devices on every node.

The nodes share one store (a SQLite file here; PostgreSQL in test_cluster_redis)
and an in-process broker, so these tests run anywhere; the Redis and process
tests are in test_cluster_redis.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from wire import SECRET, TRANSPORT, Dial, video_card

from clipwire.server import ClipwireServer, HubConfig
from clipwire.server.broker.memory import MemoryBroker, MemoryBus

Nodes = Callable[..., Awaitable[list[ClipwireServer]]]


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    started: list[ClipwireServer] = []

    async def start(count: int = 2, **settings: Any) -> list[ClipwireServer]:
        bus = MemoryBus()
        for _ in range(count):
            config = HubConfig(port=0, db=str(tmp_path / "shared.db"), secret=SECRET,
                               dm_policy="everyone", transport=TRANSPORT, **settings)
            server = ClipwireServer(config, broker=MemoryBroker(bus))
            await server.start()
            started.append(server)
        return started[-count:]

    yield start
    for server in reversed(started):
        await server.close()


async def test_dm_from_one_node_reaches_the_other(nodes: Nodes, dial: Dial) -> None:
    a, b = await nodes(2)
    alice, bob = await dial(a.url, "alice"), await dial(b.url, "bob")
    ok = await alice.ok("send", to="bob", cmid="m1", text="across nodes")
    assert (await bob.event("conv"))["conv"] == ok["conv"]
    msg = await bob.event("msg")
    assert (msg["seq"], msg["from"], msg["text"]) == (1, "alice", "across nodes")
    reply = await bob.ok("send", conv=ok["conv"], cmid="r1", text="and back",
                         reply={"seq": 1})
    assert reply["seq"] == 2
    assert (await alice.event("msg"))["text"] == "and back"
    await alice.no_event("msg")


async def test_group_over_three_nodes_in_order(nodes: Nodes, dial: Dial) -> None:
    servers = await nodes(3)
    users = ["ann", "ben", "cat"]
    clients = [await dial(s.url, u) for s, u in zip(servers, users, strict=True)]
    conv = (await clients[0].ok("group.create", members=users[1:], title="trio"))["conv"]
    for client in clients[1:]:
        await client.event("conv", conv=conv)
    sent = []
    for n in range(30):
        sender = clients[n % 3]
        sent.append((await sender.ok("send", conv=conv, cmid=f"m{n}", text=f"t{n}"))["seq"])
    assert sorted(sent) == list(range(1, 31))
    for index, client in enumerate(clients):
        got = [(await client.event("msg", conv=conv))["seq"] for _ in range(20)]
        own = [seq for n, seq in enumerate(sent) if n % 3 == index]
        assert got == [seq for seq in range(1, 31) if seq not in own]


async def test_live_signals_and_receipts_cross_nodes(nodes: Nodes, dial: Dial) -> None:
    a, b = await nodes(2)
    alice, bob = await dial(a.url, "alice"), await dial(b.url, "bob")
    conv = (await alice.ok("send", to="bob", cmid="v", kind="video",
                           video=video_card(duration_ms=60_000)))["conv"]
    await bob.event("msg")
    await alice.send_frame({"t": "typing", "conv": conv})
    assert await bob.event("typing") == {"t": "typing", "conv": conv, "user": "alice"}
    await bob.ok("read", conv=conv, seq=1)
    assert (await alice.event("read"))["user"] == "bob"
    await bob.ok("react", conv=conv, seq=1, emoji="🔥", on=True, at_ms=1500)
    assert (await alice.event("reaction"))["at_ms"] == 1500
    await alice.ok("watch", conv=conv, video_id="v1", pos_ms=9000, playing=True)
    assert (await bob.event("watch"))["pos_ms"] == 9000
    await alice.ok("unsend", conv=conv, seq=1)
    assert await bob.event("unsent") == {"t": "unsent", "conv": conv, "seq": 1}


async def test_membership_and_friendship_changes_cross_nodes(tmp_path: Path, dial: Dial) -> None:
    bus = MemoryBus()
    servers = []
    for _ in range(2):
        config = HubConfig(port=0, db=str(tmp_path / "friends.db"), secret=SECRET, transport=TRANSPORT)
        servers.append(ClipwireServer(config, broker=MemoryBroker(bus)))
        await servers[-1].start()
    try:
        a, b = servers
        alice, bob = await dial(a.url, "alice"), await dial(b.url, "bob")
        refused = await alice.call("send", to="bob", cmid="x", text="hi")
        assert refused["code"] == "forbidden"  # friends policy: not yet
        await alice.ok("friend.request", user="bob")
        assert (await bob.event("friend"))["state"] == "requested"
        await bob.ok("friend.accept", user="alice")
        assert (await alice.event("friend", state="accepted"))["user"] == "bob"
        assert (await alice.event("presence", user="bob"))["online"] is True
        # Node a learnt of the friendship through the broker: the DM is allowed now.
        ok = await alice.ok("send", to="bob", cmid="y", text="friends now")
        assert (await bob.event("msg"))["seq"] == ok["seq"]
        # A group made on node b, with alice added later from node b.
        group = (await bob.ok("group.create", members=[], title="later"))["conv"]
        await bob.ok("group.add", conv=group, members=["alice"])
        assert sorted((await alice.event("conv", conv=group))["members"]) == ["alice", "bob"]
        await alice.ok("send", conv=group, cmid="g1", text="joined from a")
        assert (await bob.event("msg", conv=group))["text"] == "joined from a"
        await bob.ok("group.remove", conv=group, members=["alice"])
        assert (await alice.event("conv", conv=group))["removed"] is True
        denied = await alice.call("send", conv=group, cmid="g2", text="still here?")
        assert denied["code"] == "forbidden"  # node a dropped its cached membership
    finally:
        for server in servers:
            await server.close()


async def test_leaving_a_group_ends_a_strangers_presence_watch_on_another_node(
    nodes: Nodes, dial: Dial
) -> None:
    a, b, c = await nodes(3)
    alice, carol = await dial(a.url, "alice"), await dial(c.url, "carol")
    bob = await dial(b.url, "bob")
    conv = (await carol.ok("group.create", members=["alice", "bob"], title="once"))["conv"]
    await alice.ok("presence", users=["bob"])  # (online per node here: no shared registry)
    await bob.close()
    assert (await alice.event("presence", user="bob"))["online"] is False  # watched across nodes
    bob = await dial(b.url, "bob")
    assert (await alice.event("presence", user="bob"))["online"] is True

    await carol.ok("group.remove", conv=conv, members=["bob"])  # on a third node
    assert await alice.event("presence", user="bob") == {
        "t": "presence", "user": "bob", "online": False, "last_seen": None}
    await bob.close()
    await dial(b.url, "bob")
    await alice.no_event("presence")
