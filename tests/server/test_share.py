"""share: one video card to many users and groups, with one result per target."""

from __future__ import annotations

import pytest
from wire import Connect, Dial, HubFactory, video_card

from clipwire.server import ClipwireServer

CARD = video_card("clip-9", caption="a clip", duration_ms=42_000)


async def test_share_to_users_and_groups_answers_per_target_in_order(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, bob, carol, dave = [await connect(u) for u in ("alice", "bob", "carol", "dave")]
    bob_dm = (await alice.ok("send", to="bob", cmid="hello", text="hi"))["conv"]
    await bob.event("msg")
    mine = (await alice.ok("group.create", members=["carol"], title="mine"))["conv"]
    theirs = (await dave.ok("group.create", members=["bob"], title="not alice's"))["conv"]

    reply = await alice.ok("share", video=CARD, text="must see", cmid="share-1",
                           to=["bob", "carol", "alice"], convs=[mine, theirs, "g:does-not-exist"])
    results = reply["results"]
    assert len(results) == 6
    # `to` targets first, in the order given, then `convs`.
    assert [r.get("to") for r in results[:3]] == ["bob", "carol", "alice"]
    assert [r.get("conv") for r in results[3:]] == [mine, theirs, "g:does-not-exist"]

    to_bob, to_carol, to_self, in_mine, in_theirs, nowhere = results
    assert (to_bob["conv"], to_bob["seq"]) == (bob_dm, 2)
    assert to_carol["conv"].startswith("dm:") and to_carol["seq"] == 1
    assert to_self == {"to": "alice", "error": "bad_request"}
    assert (in_mine["conv"], in_mine["seq"]) == (mine, 1)
    assert in_theirs == {"conv": theirs, "error": "forbidden"}
    assert nowhere == {"conv": "g:does-not-exist", "error": "forbidden"}  # same answer as not a member
    for ok in (to_bob, to_carol, in_mine):
        assert set(ok) >= {"conv", "seq", "ts"} and "error" not in ok

    msg = await bob.event("msg", conv=bob_dm)
    assert (msg["kind"], msg["video"], msg["text"], msg["cmid"], msg["from"]) == (
        "video", CARD, "must see", "share-1", "alice")
    # Carol's DM with alice is new: announced, then the message; she also gets the group copy.
    assert (await carol.event("conv", conv=to_carol["conv"]))["peer"] == "alice"
    assert (await carol.event("msg", conv=to_carol["conv"]))["video"] == CARD
    assert (await carol.event("msg", conv=mine))["seq"] == 1
    await alice.no_event("msg")
    await dave.no_event("msg")
    await bob.no_event("msg")

    history = (await dave.ok("history", conv=theirs))["messages"]
    assert history == []


async def test_share_drops_duplicate_targets(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    group = (await alice.ok("group.create", members=["bob"], title="g"))["conv"]
    reply = await alice.ok("share", video=CARD, cmid="dup", to=["bob", "bob"], convs=[group, group])
    assert [r.get("to", r.get("conv")) for r in reply["results"]] == ["bob", group]
    await bob.event("msg", conv=group)
    await bob.event("msg", conv=reply["results"][0]["conv"])
    await bob.no_event("msg")


async def test_share_into_a_dm_by_its_conversation_id(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    dm = (await alice.ok("send", to="bob", cmid="c", text="hi"))["conv"]
    reply = await bob.ok("share", video=CARD, cmid="back", convs=[dm])
    assert reply["results"] == [{"conv": dm, "seq": 2, "ts": reply["results"][0]["ts"]}]
    assert (await alice.event("msg", seq=2))["video"] == CARD


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"video": CARD}, "at least one target"),
        ({"video": CARD, "to": [], "convs": []}, "at least one target"),
        ({"to": ["bob"]}, "'video'"),
        ({"to": ["bob"], "video": {"id": "v", "url": "mailto:x@y"}}, "'video.url'"),
        ({"to": "bob", "video": CARD}, "'to'"),
        ({"convs": [7], "video": CARD}, "'convs[]'"),
        ({"to": [f"u{n}" for n in range(101)], "video": CARD}, "'to' has more than 100"),
        ({"to": [f"u{n}" for n in range(60)], "convs": [f"g:{n}" for n in range(41)], "video": CARD},
         "at most 100 targets"),
    ],
)
async def test_malformed_shares_are_refused(
    hub: ClipwireServer, connect: Connect, fields: dict[str, object], fragment: str
) -> None:
    alice = await connect("alice")
    reply = await alice.call("share", cmid="s", **fields)
    assert (reply["t"], reply["code"]) == ("error", "bad_request")
    assert fragment in reply["message"], reply
    assert alice.welcome["convs"] == []
    assert (await alice.ok("ping"))["t"] == "ok"


async def test_share_target_bound_follows_the_setting(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory(max_share_targets=3)
    alice = await dial(server.url, "alice")
    over = await alice.call("share", cmid="s1", video=CARD, to=["a", "b"], convs=["g:1", "g:2"])
    assert (over["t"], over["code"]) == ("error", "bad_request")
    ok = await alice.ok("share", cmid="s2", video=CARD, to=["a", "b", "c"])
    assert [r["seq"] for r in ok["results"]] == [1, 1, 1]
