"""Nodes agree right after a write: what one node acknowledged, another acts on at once.

Each node caches the social graph and conversation membership, and learns of
another node's change through the broker, a moment later. A client told of a
change (by its ack, or out of band) may ask another node before that moment;
the answer must be the store's, not the stale cache's. Every round below asks
at once, with no wait, on both stores the nodes can share.
"""

from __future__ import annotations

import asyncio

import pytest
from clusterhelp import Device, Rig

ROUNDS = 30
BOTH_STORES = pytest.mark.parametrize("rig", ["postgres", "sqlite"], indirect=True)


async def two_nodes(rig: Rig, dm_policy: str = "everyone") -> None:
    """One node, then the other: two processes creating one fresh SQLite file at the same
    moment may fail (``database is locked`` on ``journal_mode=WAL``), a start-up matter
    of its own."""
    for _ in range(2):
        await rig.start(1, dm_policy=dm_policy)


def refusals(replies: list[dict[str, object]]) -> list[dict[str, object]]:
    return [reply for reply in replies if reply["t"] != "ok"]


async def pairs(rig: Rig, prefix: str) -> list[tuple[Device, Device]]:
    """``ROUNDS`` fresh users on node 0, each with a partner on node 1."""
    first, second = rig.nodes[0], rig.nodes[1]
    return [(await rig.join(first, f"{prefix}a{i}"), await rig.join(second, f"{prefix}b{i}"))
            for i in range(ROUNDS)]


@BOTH_STORES
async def test_accept_on_one_node_right_after_the_request_on_another_then_a_dm(rig: Rig) -> None:
    await two_nodes(rig, dm_policy="friends")
    replies = []
    for asker, asked in await pairs(rig, "f"):
        await asker.ok("friend.request", user=asked.user)
        replies.append(await asked.request("friend.accept", user=asker.user))  # node 1: no wait
        replies.append(await asker.request("send", to=asked.user, cmid="hi", text="friends now"))
    assert refusals(replies) == [], f"{len(refusals(replies))} of {len(replies)} refused"


@BOTH_STORES
async def test_a_dm_right_after_an_unblock_on_another_node(rig: Rig) -> None:
    await two_nodes(rig)  # anyone may write to anyone; only the block stands between
    sides = await pairs(rig, "u")
    for writer, blocker in sides:
        await blocker.ok("block", user=writer.user)
    # The block holds; and node 0 has each writer's record, with the block, in its cache.
    refused = [await writer.request("send", to=blocker.user, cmid="no", text="blocked")
               for writer, blocker in sides]
    assert len(refusals(refused)) == ROUNDS, refused
    replies = []
    for writer, blocker in sides:
        await blocker.ok("unblock", user=writer.user)
        replies.append(await writer.request("send", to=blocker.user, cmid="yes", text="hello again"))
    assert refusals(replies) == [], f"{len(refusals(replies))} of {len(replies)} refused"


@BOTH_STORES
async def test_a_member_added_on_one_node_posts_through_another_at_once(rig: Rig) -> None:
    await two_nodes(rig)
    owner = await rig.join(rig.nodes[0], "owner")
    # A member on node 1 keeps each group in node 1's cache before anyone is added.
    keeper = await rig.join(rig.nodes[1], "keeper")
    groups = [(await owner.ok("group.create", members=["keeper"], title=f"g{i}"))["conv"]
              for i in range(ROUNDS)]
    await asyncio.gather(*(keeper.next_event("conv", conv=conv) for conv in groups))
    for conv in groups:
        await keeper.ok("send", conv=conv, cmid="warm", text="node 1 has this group cached")
    newcomers = [await rig.join(rig.nodes[1], f"new{i}") for i in range(ROUNDS)]
    replies = []
    for conv, newcomer in zip(groups, newcomers, strict=True):
        await owner.ok("group.add", conv=conv, members=[newcomer.user])
        replies.append(await newcomer.request("send", conv=conv, cmid="here", text="just added"))
        replies.append(await newcomer.request("history", conv=conv))
    assert refusals(replies) == [], f"{len(refusals(replies))} of {len(replies)} refused"

