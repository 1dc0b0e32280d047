"""The social cache stays in step with the store while a write is under way.

A node of a cluster rereads a user's record before refusing them (a second
look), and drops it when another node's change arrives; a reread that overlaps
a social write may read the store before the write commits. These tests hold a
real store's write open at a gate to make that overlap certain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from socialhelp import befriend, error_code, quiet, social_hub, strangers_in_a_group
from wire import WAIT_S, Dial, HubFactory

from clipwire.server.broker.memory import MemoryBroker
from clipwire.server.store.base import Appended, NewMessage, SocialRecord
from clipwire.server.store.sqlite import SQLiteStore


class GatedStore(SQLiteStore):
    """A SQLite store whose chosen social call waits at a gate (a busy disk, a distant
    database): ``held`` names the call, ``arrived`` is set once one is waiting."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.held: str | None = None
        self.arrived = asyncio.Event()
        self.gate = asyncio.Event()

    async def _wait(self, call: str) -> None:
        if self.held == call:
            self.arrived.set()
            await self.gate.wait()

    async def set_block(self, blocker: str, blocked: str, on: bool, ts: int) -> None:
        await self._wait("set_block")
        await super().set_block(blocker, blocked, on, ts)

    async def set_friendship(self, a: str, b: str, state: str | None, requester: str | None,
                             ts: int) -> None:
        await self._wait("set_friendship")
        await super().set_friendship(a, b, state, requester, ts)

    async def append_batch(self, items: Sequence[NewMessage]) -> list[Appended | None]:
        await self._wait("append_batch")
        return await super().append_batch(items)

    async def social(self, user: str) -> SocialRecord:
        record = await super().social(user)  # read now, answered after the gate opens
        await self._wait("social")
        return record


@pytest.mark.parametrize(("request_type", "store_call"),
                         [("block", "set_block"), ("friend.remove", "set_friendship")])
async def test_a_reread_during_a_block_or_unfriend_does_not_keep_the_old_record(
    hub_factory: HubFactory, dial: Dial, tmp_path: Path, request_type: str, store_call: str
) -> None:
    # A broker makes the hub a cluster node: refusals get a second look.
    store = GatedStore(tmp_path / "gated.db")
    _, join = await social_hub(hub_factory, dial, store=store, broker=MemoryBroker())
    alice, bob = await join("alice"), await join("bob")
    await befriend(alice, bob)
    await alice.ok("send", to="bob", cmid="c0", text="friends")
    await quiet(alice, bob)

    store.held = store_call
    pending = await bob.send_request(request_type, user="alice")
    await asyncio.wait_for(store.arrived.wait(), WAIT_S)
    # Refused from the cache, then a second look rereads alice's record: before the commit.
    assert error_code(await alice.call("send", to="carol", cmid="c1", text="hi")) == "forbidden"
    store.gate.set()
    assert (await bob.reply(pending))["t"] == "ok"

    assert error_code(await alice.call("send", to="bob", cmid="c2", text="still?")) == "forbidden"


async def test_a_load_that_overlaps_a_change_from_another_node_is_not_kept(
    hub_factory: HubFactory, dial: Dial, tmp_path: Path
) -> None:
    store = GatedStore(tmp_path / "gated.db")
    server, join = await social_hub(hub_factory, dial, store=store, broker=MemoryBroker())
    graph = server.hub.social.graph
    alice, bob = await join("alice"), await join("bob")
    await befriend(alice, bob)
    graph.forget("alice")

    store.held = "social"
    load = asyncio.create_task(graph.record("alice"))
    await asyncio.wait_for(store.arrived.wait(), WAIT_S)  # read: friends, no block
    # Another node commits bob's block and its broker message drops alice's record here.
    await SQLiteStore.set_block(store, "bob", "alice", True, 1)
    graph.forget("alice")
    store.gate.set()
    assert "bob" not in (await load).blocked_by  # good for the request that asked, but
    assert graph.peek("alice") is None  # not kept: the next use reads the block
    assert error_code(await alice.call("send", to="bob", cmid="c1", text="still?")) == "forbidden"


async def test_a_write_reaches_the_record_cached_since_its_writer_read(
    hub_factory: HubFactory, dial: Dial
) -> None:
    # A writer's read can go stale before its write starts: a second look (or another
    # node's change) dropped it, and a newer copy was cached meanwhile.
    server, join = await social_hub(hub_factory, dial, broker=MemoryBroker())
    graph = server.hub.social.graph
    await join("alice")
    read = await graph.record("alice")
    graph.forget("alice")
    cached = await graph.record("alice")
    assert cached is not read

    await graph.commit(server.hub.store.set_block("bob", "alice", True, 1),
                       [("alice", read, lambda r: r.blocked_by.add("bob"))])
    assert "bob" in read.blocked_by and graph.peek("alice") is cached
    assert "bob" in cached.blocked_by


async def test_a_blocker_gets_a_stub_when_the_senders_record_left_the_cache_before_the_commit(
    hub_factory: HubFactory, dial: Dial, tmp_path: Path
) -> None:
    """Between the send's checks and its commit, the sender's record may leave the cache
    (another node's change): who blocks the sender is then read again, never guessed."""
    store = GatedStore(tmp_path / "gated.db")
    server, join = await social_hub(hub_factory, dial, store=store, broker=MemoryBroker(),
                                    dm_policy="everyone")
    alice, bob, carol, conv = await strangers_in_a_group(join)
    await bob.ok("block", user="alice")
    await quiet(alice, bob, carol)

    store.held = "append_batch"
    pending = await alice.send_request("send", conv=conv, cmid="a1", text="can bob read this?")
    await asyncio.wait_for(store.arrived.wait(), WAIT_S)
    server.hub.social.graph.forget("alice")  # as another node's "social changed" does
    store.gate.set()
    assert (await alice.reply(pending))["t"] == "ok"
    assert (await carol.event("msg", seq=1))["text"] == "can bob read this?"
    seen = await bob.event("msg", seq=1)
    assert seen.get("hidden") is True and "text" not in seen, seen
