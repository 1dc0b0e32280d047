"""Reactions: on any message, toggled, pinned to a moment of a shared video, summed up in history."""

from __future__ import annotations

from typing import Any

import pytest
from socialhelp import error_code, group, queued_of, quiet, settle, social_hub
from wire import Dial, HubFactory, RawClient, video_card

CARD = video_card("clip", duration_ms=30_000)


async def _setup(join: Any) -> tuple[RawClient, RawClient, RawClient, RawClient, str]:
    """alice (two devices), bob and carol in a group with a text (seq 1) and a video share (seq 2)."""
    alice, alice_2, bob, carol = [await join(u) for u in ("alice", "alice", "bob", "carol")]
    conv = await group(alice, "bob", "carol")
    await alice.ok("send", conv=conv, cmid="t1", text="a text")
    share = await alice.ok("share", cmid="s1", convs=[conv], video=CARD, text="watch")
    assert share["results"][0]["seq"] == 2
    await quiet(alice, alice_2, bob, carol)
    return alice, alice_2, bob, carol, conv


async def _reactions(client: RawClient, conv: str) -> dict[int, list[dict[str, Any]]]:
    """Each message's reaction summary, by emoji (the hub's order among emoji is not specified)."""
    return {m["seq"]: sorted(m["reactions"], key=lambda r: r["emoji"])
            for m in (await client.ok("history", conv=conv))["messages"]}


async def test_a_reaction_reaches_every_member_but_the_reacting_connection(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, alice_2, bob, carol, conv = await _setup(join)

    assert set(await bob.ok("react", conv=conv, seq=1, emoji="👍", on=True)) == {"t", "id"}
    event = {"t": "reaction", "conv": conv, "seq": 1, "user": "bob", "emoji": "👍", "on": True}
    for device in (alice, alice_2, carol):
        assert await device.event("reaction") == event
    await settle(bob)
    assert queued_of(bob, "reaction") == []

    # On a video share, a reaction may name a moment.
    await carol.ok("react", conv=conv, seq=2, emoji="😂", on=True, at_ms=12_500)
    assert await alice.event("reaction") == {"t": "reaction", "conv": conv, "seq": 2, "user": "carol",
                                             "emoji": "😂", "on": True, "at_ms": 12_500}

    # The reactor's other devices hear of it too.
    await alice.ok("react", conv=conv, seq=2, emoji="🔥", on=True)
    assert (await alice_2.event("reaction", user="alice"))["emoji"] == "🔥"
    assert (await carol.event("reaction", user="alice"))["emoji"] == "🔥"


async def test_history_sums_reactions_up_per_viewer(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, _, bob, carol, conv = await _setup(join)
    await bob.ok("react", conv=conv, seq=1, emoji="👍", on=True)
    await carol.ok("react", conv=conv, seq=1, emoji="👍", on=True)
    await carol.ok("react", conv=conv, seq=1, emoji="❤️", on=True)
    await bob.ok("react", conv=conv, seq=2, emoji="😂", on=True, at_ms=20_000)
    await carol.ok("react", conv=conv, seq=2, emoji="😂", on=True, at_ms=5_000)
    await alice.ok("react", conv=conv, seq=2, emoji="😂", on=True, at_ms=20_000)
    await alice.ok("react", conv=conv, seq=2, emoji="🔥", on=True)

    assert await _reactions(bob, conv) == {
        1: [{"emoji": "❤️", "count": 1, "me": False}, {"emoji": "👍", "count": 2, "me": True}],
        2: [{"emoji": "🔥", "count": 1, "me": False},
            {"emoji": "😂", "count": 3, "me": True, "moments": [5_000, 20_000]}],
    }
    assert await _reactions(alice, conv) == {
        1: [{"emoji": "❤️", "count": 1, "me": False}, {"emoji": "👍", "count": 2, "me": False}],
        2: [{"emoji": "🔥", "count": 1, "me": True},
            {"emoji": "😂", "count": 3, "me": True, "moments": [5_000, 20_000]}],
    }
    # A message without reactions has an empty list.
    await alice.ok("send", conv=conv, cmid="t2", text="quiet")
    assert (await _reactions(carol, conv))[3] == []


async def test_toggling_off_and_repeating_a_reaction(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, _, bob, carol, conv = await _setup(join)
    await bob.ok("react", conv=conv, seq=1, emoji="👍", on=True)
    await alice.event("reaction", on=True)

    await bob.ok("react", conv=conv, seq=1, emoji="👍", on=True)  # already on: no event
    await bob.ok("react", conv=conv, seq=1, emoji="👎", on=False)  # never on: no event
    await settle(bob, alice)
    assert queued_of(alice, "reaction") == []

    await bob.ok("react", conv=conv, seq=1, emoji="👍", on=False)
    assert await alice.event("reaction") == {"t": "reaction", "conv": conv, "seq": 1, "user": "bob",
                                             "emoji": "👍", "on": False}
    assert (await _reactions(carol, conv))[1] == []
    await bob.ok("react", conv=conv, seq=1, emoji="👍", on=False)  # already off
    await settle(bob, carol)
    assert queued_of(carol, "reaction", on=False) == [{"t": "reaction", "conv": conv, "seq": 1,
                                                        "user": "bob", "emoji": "👍", "on": False}]


async def test_reacting_again_at_another_moment_moves_the_reaction(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, _, bob, _, conv = await _setup(join)
    await bob.ok("react", conv=conv, seq=2, emoji="😮", on=True, at_ms=1_000)
    await alice.event("reaction", at_ms=1_000)
    await bob.ok("react", conv=conv, seq=2, emoji="😮", on=True, at_ms=9_000)
    assert (await alice.event("reaction"))["at_ms"] == 9_000
    moved = {"emoji": "😮", "count": 1, "me": False, "moments": [9_000]}
    assert (await _reactions(alice, conv))[2] == [moved]
    await bob.ok("react", conv=conv, seq=2, emoji="😮", on=True, at_ms=9_000)  # the same: nothing changes
    await settle(bob, alice)
    assert queued_of(alice, "reaction") == []


async def test_moments_are_at_most_twenty(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, alice_2, bob, carol, conv = await _setup(join)
    await alice.ok("group.add", conv=conv, members=[f"fan{n}" for n in range(25)])
    for n in range(25):
        fan = await join(f"fan{n}")
        await fan.ok("react", conv=conv, seq=2, emoji="🔥", on=True, at_ms=1_000 * (25 - n))
        await fan.close()
    [summary] = (await _reactions(alice, conv))[2]
    assert summary["count"] == 25
    assert summary["moments"] == [1_000 * n for n in range(1, 21)]
    await quiet(alice_2, bob, carol)  # read what they were sent, so they close at once


async def test_a_moment_needs_a_video_share_and_lies_within_it(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, _, bob, _, conv = await _setup(join)
    for seq, at_ms in ((1, 10), (2, 30_001)):
        reply = await bob.call("react", conv=conv, seq=seq, emoji="👍", on=True, at_ms=at_ms)
        assert error_code(reply) == "bad_request" and "'at_ms'" in reply["message"]
    await bob.ok("react", conv=conv, seq=2, emoji="👍", on=True, at_ms=30_000)  # the very end
    # A card without duration_ms bounds nothing.
    open_ended = (await alice.ok("send", conv=conv, cmid="v2", kind="video", video=video_card("live")))["seq"]
    await bob.ok("react", conv=conv, seq=open_ended, emoji="👍", on=True, at_ms=7_200_000)
    # Turning off needs no moment, and one given is ignored.
    await bob.ok("react", conv=conv, seq=1, emoji="👍", on=False, at_ms=10)


async def test_non_members_and_missing_messages(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, _, bob, _, conv = await _setup(join)
    mallory = await join("mallory")
    for reply in (await mallory.call("react", conv=conv, seq=1, emoji="👍", on=True),
                  await mallory.call("react", conv="g:nowhere", seq=1, emoji="👍", on=True)):
        assert error_code(reply) == "forbidden"
    for seq in (0, 3, 99):
        reply = await bob.call("react", conv=conv, seq=seq, emoji="👍", on=True)
        assert error_code(reply) == "not_found"
    await settle(mallory, bob, alice)
    assert queued_of(alice, "reaction") == []
    assert all(r == [] for r in (await _reactions(alice, conv)).values())


@pytest.mark.parametrize(
    "emoji",
    ["", " ", "\t", "\u200d", "x" * 33, "a\nb", "\x00", 7, None, ["👍"]],
)
async def test_emoji_are_bounded_and_validated(hub_factory: HubFactory, dial: Dial, emoji: object) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice = await join("alice")
    conv = await group(alice)
    await alice.ok("send", conv=conv, cmid="c1", text="t")
    fields: dict[str, Any] = {"conv": conv, "seq": 1, "on": True}
    if emoji is not None:
        fields["emoji"] = emoji
    assert error_code(await alice.call("react", **fields)) == "bad_request"
    assert (await _reactions(alice, conv))[1] == []


async def test_long_emoji_sequences_are_accepted(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice = await join("alice")
    conv = await group(alice)
    await alice.ok("send", conv=conv, cmid="c1", text="t")
    family, flag, word = "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "y" * 32
    for emoji in (family, flag, word, "+1"):
        await alice.ok("react", conv=conv, seq=1, emoji=emoji, on=True)
    assert [r["emoji"] for r in (await _reactions(alice, conv))[1]] == sorted([family, flag, word, "+1"])
