"""Helpers for the social-layer tests: friends-policy hubs, friendships, barriers.

A *barrier* replaces most "wait and see that nothing came" checks: the hub
handles one connection's frames in order and pushes the events a request causes
before (or in the same step as) its reply, so once ``settle`` has had a ``ping``
answered on every client, every event caused earlier sits in ``queued()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from wire import WAIT_S, Dial, HubFactory, RawClient

from clipwire.server import ClipwireServer

Join = Callable[..., Awaitable[RawClient]]


async def social_hub(hub_factory: HubFactory, dial: Dial, **settings: Any) -> tuple[ClipwireServer, Join]:
    """A hub with the ``friends`` DM policy (unless ``settings`` say otherwise) and a joiner."""
    settings.setdefault("dm_policy", "friends")
    server = await hub_factory(**settings)

    async def join(user: str, **hello: Any) -> RawClient:
        return await dial(server.url, user, **hello)

    return server, join


def user_of(client: RawClient) -> str:
    user: str = client.welcome["user"]
    return user


async def settle(*clients: RawClient) -> None:
    """A ping round trip on each client, in order: earlier events are now queued."""
    for client in clients:
        await client.ok("ping")


async def quiet(*clients: RawClient) -> None:
    """Settle, then forget every queued event."""
    await settle(*clients)
    for client in clients:
        client._events.clear()


def queued_of(client: RawClient, t: str, **match: Any) -> list[dict[str, Any]]:
    """Queued events of type ``t`` whose fields equal ``match``."""
    return [e for e in client.queued()
            if e["t"] == t and all(e.get(k) == v for k, v in match.items())]


async def befriend(a: RawClient, b: RawClient) -> None:
    """``a`` asks, ``b`` accepts; the friend and presence events this causes are consumed."""
    ua, ub = user_of(a), user_of(b)
    await a.ok("friend.request", user=ub)
    await b.ok("friend.accept", user=ua)
    await a.event("friend", user=ub, state="accepted")
    await b.event("presence", user=ua)
    await a.event("presence", user=ub)
    await quiet(a, b)


async def group(owner: RawClient, *members: str, title: str = "crew") -> str:
    """A group of ``owner`` and every one of ``members`` (the policy must admit them all)."""
    reply = await owner.ok("group.create", members=list(members), title=title)
    assert reply["refused"] == [], f"not added to the group: {reply['refused']}"
    conv: str = reply["conv"]
    return conv


async def strangers_in_a_group(join: Join) -> tuple[RawClient, RawClient, RawClient, str]:
    """alice and bob, strangers to each other, in carol's group (the policy must admit them)."""
    alice, bob, carol = await join("alice"), await join("bob"), await join("carol")
    return alice, bob, carol, await group(carol, "alice", "bob")


async def until(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Poll the in-process hub's state until ``condition`` holds (for a leave to be handled)."""
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


def error_code(reply: dict[str, Any]) -> str:
    assert reply["t"] == "error", reply
    code: str = reply["code"]
    return code
