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


# -- share to many, under the social rules -----------------------------------


async def test_share_to_fifty_targets_honours_policy_blocks_and_membership(
    hub_factory: HubFactory, dial: Dial
) -> None:
    server = await hub_factory(dm_policy="friends")
    card = video_card("clip-50", caption="for everyone", duration_ms=60_000, at_ms=15_000)
    alice = await dial(server.url, "alice")
    friends = [f"friend{n}" for n in range(20)]
    for user in friends:  # they are offline: the requests wait for them
        await alice.ok("friend.request", user=user)
    for user in friends:
        friend = await dial(server.url, user)
        await friend.ok("friend.accept", user="alice")
        await friend.close()
    strangers = [f"stranger{n}" for n in range(5)]
    blockers, blocked = ["blocker0", "blocker1", "blocker2"], ["blocked0", "blocked1"]
    for user in blockers:
        client = await dial(server.url, user)
        await client.ok("block", user="alice")
        await client.close()
    for user in blocked:
        await alice.ok("block", user=user)
    mine = [(await alice.ok("group.create", members=[friends[n]], title=f"mine {n}"))["conv"]
            for n in range(15)]
    owner = await dial(server.url, "owner")
    theirs = [(await owner.ok("group.create", members=[], title=f"theirs {n}"))["conv"]
              for n in range(5)]
    online_friend = await dial(server.url, "friend0")

    # Interleave allowed and forbidden targets: 30 users and 20 groups.
    to = [u for group in zip(friends[:5], strangers, strict=True) for u in group] + friends[5:15]
    to += [u for group in zip(friends[15:18], blockers, strict=True) for u in group]
    to += friends[18:] + blocked
    convs = [c for group in zip(mine[:5], theirs, strict=True) for c in group] + mine[5:]
    assert (len(to), len(convs)) == (30, 20)
    reply = await alice.ok("share", cmid="fifty", video=card, text="all of you", to=to, convs=convs)
    results = reply["results"]
    assert len(results) == 50
    forbidden_users = set(strangers) | set(blockers) | set(blocked)
    for target, result in zip(to, results[:30], strict=True):
        if target in forbidden_users:
            assert result == {"to": target, "error": "forbidden"}, result
        else:
            assert result["to"] == target and result["conv"].startswith("dm:") and result["seq"] == 1
    for target, result in zip(convs, results[30:], strict=True):
        if target in theirs:
            assert result == {"conv": target, "error": "forbidden"}, result
        else:
            assert (result["conv"], result["seq"]) == (target, 1)
    allowed = [r["conv"] for r in results if "error" not in r]
    assert len(allowed) == 20 + 15

    # Stored exactly the allowed ones, one message each, with the card and its start position.
    for conv in allowed:
        [stored] = (await alice.ok("history", conv=conv))["messages"]
        assert (stored["seq"], stored["from"], stored["cmid"], stored["kind"], stored["video"],
                stored["text"]) == (1, "alice", "fifty", "video", card, "all of you")
    listed = (await dial(server.url, "alice")).welcome["convs"]
    assert sorted(c["conv"] for c in listed) == sorted(allowed)
    for conv in theirs:
        assert (await owner.ok("history", conv=conv))["messages"] == []
    for user in [*strangers, *blockers, *blocked]:
        assert (await dial(server.url, user)).welcome["convs"] == []
    live = await online_friend.event("msg", conv=results[0]["conv"])
    assert live["video"]["at_ms"] == 15_000

    # A retry with the same cmid is safe target by target: the same seqs, nothing stored twice.
    again = await alice.ok("share", cmid="fifty", video=card, text="all of you", to=to, convs=convs)
    assert [(r.get("conv"), r.get("seq"), r.get("error")) for r in again["results"]] == [
        (r.get("conv"), r.get("seq"), r.get("error")) for r in results]
    for conv in allowed[:3] + allowed[-3:]:
        assert len((await alice.ok("history", conv=conv))["messages"]) == 1
    await online_friend.ok("ping")  # read what came, so the socket closes at once


async def test_share_honours_blocks_under_the_open_policy(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory(dm_policy="everyone")
    alice, bob, carol = [await dial(server.url, u) for u in ("alice", "bob", "carol")]
    dm_with_carol = (await alice.ok("send", to="carol", cmid="c1", text="hi"))["conv"]
    await bob.ok("block", user="alice")
    await alice.ok("block", user="carol")
    reply = await alice.ok("share", cmid="s1", video=CARD, to=["bob", "carol", "dave"], convs=[dm_with_carol])
    results = reply["results"]
    assert results[:2] == [{"to": "bob", "error": "forbidden"}, {"to": "carol", "error": "forbidden"}]
    assert (results[2]["to"], results[2]["seq"]) == ("dave", 1)
    assert results[3] == {"conv": dm_with_carol, "error": "forbidden"}
    assert len((await carol.ok("history", conv=dm_with_carol))["messages"]) == 1
    assert sorted(c["peer"] for c in (await dial(server.url, "alice")).welcome["convs"]) == ["carol", "dave"]


async def test_replies_to_a_moment_of_a_share_are_validated_against_that_conversation(
    hub_factory: HubFactory, dial: Dial
) -> None:
    server = await hub_factory()
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")
    busy = (await alice.ok("group.create", members=["bob"], title="busy"))["conv"]
    for n in range(5):
        await alice.ok("send", conv=busy, cmid=f"b{n}", text=f"busy {n}")
    share = await alice.ok("share", cmid="s1", video=CARD, to=["bob"])
    dm = share["results"][0]["conv"]
    assert share["results"][0]["seq"] == 1

    refused = [
        await bob.call("send", conv=dm, cmid="r1", text="re", reply={"seq": 3}),  # seq 3 is busy's
        await bob.call("send", conv=dm, cmid="r2", text="re", reply={"seq": 2}),  # not yet
        await bob.call("send", conv=dm, cmid="r3", text="re", reply={"seq": 1, "at_ms": 42_001}),
        await bob.call("send", conv=busy, cmid="r4", text="re", reply={"seq": 1, "at_ms": 10}),  # a text
    ]
    for reply in refused:
        assert (reply["t"], reply["code"]) == ("error", "bad_request"), reply
    ok = await bob.ok("send", conv=dm, cmid="r5", text="that bit!", reply={"seq": 1, "at_ms": 41_000})
    assert ok["seq"] == 2  # nothing was stored by the refused replies
    assert (await alice.event("msg", conv=dm, seq=2))["reply"] == {"seq": 1, "at_ms": 41_000}
    stored = (await alice.ok("history", conv=dm))["messages"]
    assert [m.get("reply") for m in stored] == [None, {"seq": 1, "at_ms": 41_000}]
    resumed = await dial(server.url, "alice", resume={dm: 1})
    assert (await resumed.event("msg", conv=dm))["reply"] == {"seq": 1, "at_ms": 41_000}
    await alice.ok("ping")


async def test_a_user_and_their_dm_named_together_get_one_message(
    hub_factory: HubFactory, dial: Dial
) -> None:
    server = await hub_factory()
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")
    dm = (await alice.ok("send", to="bob", cmid="c1", text="hi"))["conv"]
    reply = await alice.ok("share", cmid="both", video=CARD, to=["bob"], convs=[dm])
    by_user, by_conv = reply["results"]
    assert (by_user["conv"], by_user["seq"]) == (by_conv["conv"], by_conv["seq"]) == (dm, 2)
    assert [m["seq"] for m in (await bob.ok("history", conv=dm))["messages"]] == [1, 2]
    await bob.event("msg", seq=1)
    await bob.event("msg", seq=2)
    await alice.ok("send", conv=dm, cmid="c3", text="next")
    assert (await bob.event("msg"))["seq"] == 3  # no second copy of the share in between
