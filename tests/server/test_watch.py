"""Watch-together: shared playback state per conversation, last writer wins, late joiners, expiry."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from socialhelp import error_code, group, queued_of, quiet, settle, social_hub, strangers_in_a_group
from wire import Dial, HubFactory, RawClient


def watch_of(client: RawClient, conv: str) -> dict[str, Any] | None:
    entry = next(c for c in client.welcome["convs"] if c["conv"] == conv)
    state: dict[str, Any] | None = entry.get("watch")
    return state


async def test_watch_is_told_to_members_but_the_requesting_connection(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, alice_tv, bob, dave = [await join(u) for u in ("alice", "alice", "bob", "dave")]
    conv = await group(alice, "bob")
    await quiet(alice, alice_tv, bob, dave)

    before = int(time.time() * 1000)
    reply = await alice.ok("watch", conv=conv, video_id="clip-1", pos_ms=0, playing=True)
    assert set(reply) == {"t", "id", "ts"} and before <= reply["ts"] <= int(time.time() * 1000)
    event = {"t": "watch", "conv": conv, "by": "alice", "video_id": "clip-1", "pos_ms": 0,
             "playing": True, "ts": reply["ts"]}
    for device in (alice_tv, bob):
        assert await device.event("watch") == event
    await settle(alice, dave)
    assert queued_of(alice, "watch") == [] and dave.queued() == []

    paused = await bob.ok("watch", conv=conv, video_id="clip-1", pos_ms=4_200, playing=False)
    for device in (alice, alice_tv):
        got = await device.event("watch")
        assert (got["by"], got["pos_ms"], got["playing"], got["ts"]) == ("bob", 4_200, False, paused["ts"])


async def test_non_members_cannot_watch(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, mallory = await join("alice"), await join("bob"), await join("mallory")
    conv = await group(alice, "bob")
    await quiet(alice, bob)
    for target in (conv, "g:nowhere"):
        reply = await mallory.call("watch", conv=target, video_id="x", pos_ms=0, playing=True)
        assert error_code(reply) == "forbidden"
    await settle(mallory, bob)
    assert queued_of(bob, "watch") == []
    assert watch_of(await join("alice"), conv) is None


async def test_malformed_watch_requests(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice = await join("alice")
    conv = await group(alice)
    for fields in ({"video_id": "x", "pos_ms": -1, "playing": True},
                   {"video_id": "x", "pos_ms": 0, "playing": "yes"},
                   {"pos_ms": 0, "playing": True},
                   {"video_id": "x", "playing": True}):
        assert error_code(await alice.call("watch", conv=conv, **fields)) == "bad_request"


async def test_last_writer_wins_and_a_late_joiner_gets_the_state_in_welcome(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, carol = await join("alice"), await join("bob"), await join("carol")
    conv = await group(alice, "bob", "carol")
    other = await group(bob, "carol")

    # Two writers at once: the hub orders them, ts strictly increasing, the later one stands.
    first = await alice.send_request("watch", conv=conv, video_id="clip-1", pos_ms=1_000, playing=True)
    second = await bob.send_request("watch", conv=conv, video_id="clip-2", pos_ms=2_000, playing=False)
    replies = [await alice.reply(first), await bob.reply(second)]
    assert [r["t"] for r in replies] == ["ok", "ok"]
    assert replies[0]["ts"] != replies[1]["ts"]
    winner = max(replies, key=lambda r: r["ts"])
    expected = ({"video_id": "clip-1", "pos_ms": 1_000, "playing": True, "by": "alice"}
                if winner is replies[0] else
                {"video_id": "clip-2", "pos_ms": 2_000, "playing": False, "by": "bob"})
    late = await join("carol")
    assert watch_of(late, conv) == {**expected, "ts": winner["ts"]}
    assert watch_of(late, other) is None

    # Quick successive updates keep strictly increasing ts; the last one is the state.
    stamps = [(await alice.ok("watch", conv=conv, video_id="clip-3", pos_ms=n, playing=True))["ts"]
              for n in range(5)]
    assert stamps == sorted(set(stamps)) and stamps[0] > winner["ts"]
    assert watch_of(await join("bob"), conv) == {"video_id": "clip-3", "pos_ms": 4, "playing": True,
                                                 "by": "alice", "ts": stamps[-1]}
    await quiet(alice, bob, carol)


async def test_watch_state_expires_after_inactivity(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone", watch_ttl_s=0.4)
    alice, bob = await join("alice"), await join("bob")
    conv = await group(alice, "bob")
    await alice.ok("watch", conv=conv, video_id="clip", pos_ms=0, playing=True)
    assert watch_of(await join("bob"), conv) is not None
    await asyncio.sleep(0.25)
    update = await bob.ok("watch", conv=conv, video_id="clip", pos_ms=250, playing=True)
    await asyncio.sleep(0.25)
    # The first state is older than the TTL now; the update keeps the conversation's state alive.
    alive = watch_of(await join("alice"), conv)
    assert alive is not None and (alive["ts"], alive["by"]) == (update["ts"], "bob")
    await asyncio.sleep(0.45)
    assert watch_of(await join("alice"), conv) is None
    # A new update starts afresh.
    await alice.ok("watch", conv=conv, video_id="next", pos_ms=0, playing=False)
    fresh = watch_of(await join("bob"), conv)
    assert fresh is not None and fresh["video_id"] == "next"


async def test_watch_state_lives_in_memory_only(hub_factory: HubFactory, dial: Dial) -> None:
    first, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice = await join("alice")
    conv = await group(alice, "bob")
    await alice.ok("watch", conv=conv, video_id="clip", pos_ms=0, playing=True)
    await first.close()
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    assert watch_of(await join("bob"), conv) is None


async def test_a_blocked_users_watch_does_not_reach_the_blocker_either_way(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, carol, conv = await strangers_in_a_group(join)
    await bob.ok("block", user="alice")
    await quiet(alice, bob, carol)

    await alice.ok("watch", conv=conv, video_id="clip-1", pos_ms=0, playing=True)
    assert (await carol.event("watch"))["by"] == "alice"
    await settle(alice, bob, carol)
    assert queued_of(bob, "watch") == []
    # Nor in a later welcome: the state set by alice is not shown to bob.
    assert watch_of(await join("bob"), conv) is None
    assert watch_of(await join("carol"), conv) is not None

    await bob.ok("watch", conv=conv, video_id="clip-2", pos_ms=0, playing=True)
    assert (await carol.event("watch"))["by"] == "bob"
    await settle(bob, alice)
    assert queued_of(alice, "watch") == []
