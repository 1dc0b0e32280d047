"""Rate limits on the requests besides send, history and friend.request (server/ratelimit.py):
``presence`` (one per user asked: each is a store lookup), ``react``, ``read``, ``watch``,
``block`` and ``unblock``. A member flooding any of them is refused with ``rate_limited``
before the hub looks anything up or stores anything.
"""

from __future__ import annotations

from typing import Any

from wire import Dial, HubFactory, RawClient

from clipwire.server import ClipwireServer

Request = tuple[str, dict[str, Any]]


async def flood(client: RawClient, requests: list[Request]) -> list[str]:
    """Pipeline ``requests``; the outcome of each, in order: "ok" or the error's code."""
    ids = [await client.send_request(t, **fields) for t, fields in requests]
    replies = [await client.reply(rid) for rid in ids]
    for reply in replies:
        if reply["t"] == "error":
            assert reply["code"] != "rate_limited" or reply["retry_after_ms"] > 0, reply
    return [reply["t"] if reply["t"] == "ok" else reply["code"] for reply in replies]


async def pair(hub_factory: HubFactory, dial: Dial, **settings: Any) -> tuple[ClipwireServer, RawClient, str]:
    """A hub with ``settings``, alice connected and a DM of hers holding one message."""
    hub = await hub_factory(**settings)
    alice = await dial(hub.url, "alice")
    sent = await alice.ok("send", cmid="c1", to="bob", text="hi")
    return hub, alice, sent["conv"]


async def test_a_flood_of_reactions_is_refused(hub_factory: HubFactory, dial: Dial) -> None:
    _, alice, conv = await pair(hub_factory, dial, rate_social_per_s=1.0)  # burst 2
    emojis = ["👍", "😂", "🔥", "🎉", "😮", "💯"]
    outcomes = await flood(alice, [("react", {"conv": conv, "seq": 1, "emoji": e, "on": True})
                                   for e in emojis])
    assert outcomes == ["ok"] * 2 + ["rate_limited"] * 4


async def test_a_flood_of_watch_updates_is_refused(hub_factory: HubFactory, dial: Dial) -> None:
    _, alice, conv = await pair(hub_factory, dial, rate_social_per_s=1.0)
    outcomes = await flood(alice, [("watch", {"conv": conv, "video_id": "v1", "pos_ms": pos,
                                              "playing": True}) for pos in range(6)])
    assert outcomes == ["ok"] * 2 + ["rate_limited"] * 4


async def test_a_flood_of_read_markers_is_refused_past_a_generous_burst(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, alice, conv = await pair(hub_factory, dial, rate_social_per_s=1.0)
    assert alice.welcome["limits"]["rate_read_burst"] == 64  # a catch-up after a reconnect
    outcomes = await flood(alice, [("read", {"conv": conv, "seq": n % 2}) for n in range(80)])
    assert outcomes == ["ok"] * 64 + ["rate_limited"] * 16


async def test_a_flood_of_blocks_and_unblocks_is_refused(hub_factory: HubFactory, dial: Dial) -> None:
    hub = await hub_factory(rate_friend_per_s=0.5)  # as friend requests: burst 5
    mallory = await dial(hub.url, "mallory")
    outcomes = await flood(mallory, [("block" if n % 2 else "unblock", {"user": f"victim{n}"})
                                     for n in range(9)])
    assert outcomes == ["ok"] * 5 + ["rate_limited"] * 4


async def test_presence_costs_one_per_user_asked(hub_factory: HubFactory, dial: Dial) -> None:
    hub = await hub_factory(rate_presence_per_s=1.0)  # burst 500: the most one may watch
    mallory = await dial(hub.url, "mallory")
    assert mallory.welcome["limits"]["rate_presence_burst"] == 500
    assert (await mallory.call("presence", users=[f"u{n}" for n in range(300)]))["t"] == "ok"
    assert (await mallory.call("presence", users=[f"v{n}" for n in range(200)]))["t"] == "ok"
    refused = await mallory.call("presence", users=["w"])  # the burst is spent, by users asked
    assert refused["code"] == "rate_limited"
    assert refused["retry_after_ms"] > 0


async def test_a_flood_of_presence_queries_is_refused(hub_factory: HubFactory, dial: Dial) -> None:
    hub = await hub_factory(rate_presence_per_s=1.0)
    mallory = await dial(hub.url, "mallory")
    users = [f"u{n}" for n in range(500)]
    outcomes = await flood(mallory, [("presence", {"users": users}), ("presence", {"users": users[:1]})]
                           + [("presence", {"users": [f"x{n}"]}) for n in range(3)])
    assert outcomes == ["ok"] + ["rate_limited"] * 4
