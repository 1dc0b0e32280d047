"""Blocks: no DMs either way, no presence or typing either way, hidden stubs in shared groups."""

from __future__ import annotations

from typing import Any

from socialhelp import befriend, error_code, group, queued_of, quiet, settle, social_hub
from wire import Dial, HubFactory, RawClient, history_all, video_card

from clipwire.server.conversations import NO_ACCESS as NO_ACCESS_MESSAGE

NOT_ALLOWED = NO_ACCESS_MESSAGE


def stub(msg: dict[str, Any]) -> dict[str, Any]:
    """What a blocker sees of ``msg``: its place in the order, no body."""
    return {k: msg[k] for k in ("conv", "seq", "from", "ts", "kind", "cmid")} | {"hidden": True}


async def test_a_block_refuses_dms_both_ways_and_creates_nothing(hub_factory: HubFactory, dial: Dial) -> None:
    # The open policy: only the block stands between them.
    server, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, carol = await join("alice"), await join("bob"), await join("carol")
    dm = (await alice.ok("send", to="bob", cmid="c1", text="before"))["conv"]
    await bob.event("msg")
    await bob.ok("block", user="alice")
    await bob.ok("block", user="carol")  # carol and bob never talked
    await quiet(alice, bob, carol)

    attempts = [
        await alice.call("send", to="bob", cmid="c2", text="blocked"),
        await alice.call("send", conv=dm, cmid="c3", text="blocked"),
        await bob.call("send", to="alice", cmid="c4", text="I blocked her"),
        await bob.call("send", conv=dm, cmid="c5", text="I blocked her"),
        await carol.call("send", to="bob", cmid="c6", text="blocked"),
        await bob.call("send", to="carol", cmid="c7", text="blocked"),
    ]
    for reply in attempts:
        assert (error_code(reply), reply["message"]) == ("forbidden", NOT_ALLOWED)
    share = await alice.ok("share", cmid="s1", to=["bob"], convs=[dm], video=video_card())
    assert share["results"] == [{"to": "bob", "error": "forbidden"}, {"conv": dm, "error": "forbidden"}]

    await settle(alice, bob, carol)
    for client in (alice, bob, carol):
        assert queued_of(client, "msg") == [] and queued_of(client, "conv") == []
    # The DM keeps what was said before; the blocked user still reads it.
    assert [m["text"] for m in (await alice.ok("history", conv=dm))["messages"]] == ["before"]
    # Nothing was created between carol and bob.
    assert (await dial(server.url, "carol")).welcome["convs"] == []
    assert [c["conv"] for c in (await dial(server.url, "bob")).welcome["convs"]] == [dm]


async def test_block_ends_friendship_and_requests_and_unblock_restores_nothing(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, bob, carol = await join("alice"), await join("bob"), await join("carol")
    await befriend(alice, bob)
    await carol.ok("friend.request", user="bob")
    await quiet(bob, carol)

    assert set(await bob.ok("block", user="alice")) == {"t", "id"}
    assert await alice.event("friend") == {"t": "friend", "user": "bob", "state": "removed"}
    assert await bob.event("friend") == {"t": "friend", "user": "alice", "state": "removed"}
    assert await bob.event("presence") == {"t": "presence", "user": "alice", "online": False,
                                           "last_seen": None}
    await carol.ok("block", user="bob")  # the blocker here had a pending request out
    assert await bob.event("friend") == {"t": "friend", "user": "carol", "state": "removed"}
    bob_again = await join("bob")
    assert bob_again.welcome["friends"] == [] and bob_again.welcome["requests"] == []

    # The blocker may not befriend whom they block; the blocked user's request looks sent.
    reply = await bob.call("friend.request", user="alice")
    assert (error_code(reply), reply["message"]) == ("forbidden", "you may not befriend this user")
    for client, other in ((alice, "bob"), (bob, "carol")):
        await client.ok("friend.request", user=other)
    bob_again = await join("bob")
    assert bob_again.welcome["friends"] == [] and bob_again.welcome["requests"] == []

    # Blocking again changes nothing and says nothing.
    await quiet(alice, bob)
    await bob.ok("block", user="alice")
    await settle(bob, alice)
    assert alice.queued() == [] and bob.queued() == []
    assert error_code(await bob.call("block", user="bob")) == "bad_request"

    # Unblock: no friendship comes back, so the friends policy still refuses the DM.
    await bob.ok("unblock", user="alice")
    await bob.ok("unblock", user="alice")  # idempotent
    await bob.ok("unblock", user="nobody")
    assert (await join("alice")).welcome["friends"] == []
    assert error_code(await alice.call("send", to="bob", cmid="c1", text="hi")) == "forbidden"
    await befriend(alice, bob)  # but they may become friends again
    await alice.ok("send", to="bob", cmid="c2", text="hi again")


async def test_being_blocked_is_not_revealed_by_events_or_friend_requests(
    hub_factory: HubFactory, dial: Dial
) -> None:
    """A blocked user hears nothing naming the blocker, and asks as if nothing happened."""
    _, join = await social_hub(hub_factory, dial)
    alice, bob, dave = await join("alice"), await join("bob"), await join("dave")
    await befriend(alice, bob)
    await quiet(alice, bob)
    await bob.ok("block", user="alice")
    await settle(bob, alice)
    # Alice sees the friendship end, as when bob unfriends her, and nothing else.
    assert alice.queued() == [{"t": "friend", "user": "bob", "state": "removed"}]
    await quiet(alice, bob, dave)

    # Her request to bob answers like her request to dave, who blocks no one.
    blocked = await alice.call("friend.request", user="bob")
    free = await alice.call("friend.request", user="dave")
    assert {k: v for k, v in blocked.items() if k != "id"} == {k: v for k, v in free.items()
                                                                if k != "id"} == {"t": "ok"}
    await settle(alice, bob, dave)
    assert queued_of(alice, "friend", user="bob") == [
        {"t": "friend", "user": "bob", "state": "requested", "direction": "out"}]
    assert queued_of(dave, "friend", user="alice") != [] and bob.queued() == []
    # Nothing was created: bob has no request from alice, and no friendship comes of it.
    assert (await join("bob")).welcome["requests"] == []
    assert error_code(await bob.call("friend.accept", user="alice")) == "not_found"


async def test_unblock_reopens_dms_under_the_open_policy(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob = await join("alice"), await join("bob")
    await alice.ok("block", user="bob")
    assert error_code(await bob.call("send", to="alice", cmid="c1", text="hi")) == "forbidden"
    await alice.ok("unblock", user="bob")
    ok = await bob.ok("send", to="alice", cmid="c1", text="hi")
    assert (await alice.event("msg"))["seq"] == ok["seq"] == 1


async def test_blocks_are_stored(hub_factory: HubFactory, dial: Dial) -> None:
    first, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    bob = await join("bob")
    await bob.ok("block", user="alice")
    await first.close()
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice = await join("alice")
    assert error_code(await alice.call("send", to="bob", cmid="c1", text="hi")) == "forbidden"


async def test_a_block_hides_presence_both_ways(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, bob, carol = await join("alice"), await join("bob"), await join("carol")
    await befriend(alice, bob)
    await befriend(carol, alice)
    await befriend(carol, bob)
    await group(carol, "alice", "bob")  # sharing a group would make presence visible on request
    await bob.ok("block", user="alice")
    await quiet(alice, bob, carol)

    # Asked directly, each looks offline and never seen to the other, though both are online;
    # and neither is watching the other from now on.
    for client, other in ((alice, "bob"), (bob, "alice")):
        users = (await client.ok("presence", users=[other, "carol"]))["users"]
        assert users[0] == {"user": other, "online": False, "last_seen": None}
        assert users[1] == {"user": "carol", "online": True, "last_seen": None}

    # Each leaves and comes back: carol (a friend of both) hears it, the other side does not.
    clients = {"alice": alice, "bob": bob}
    for user, other in (("alice", "bob"), ("bob", "alice")):
        await clients[user].close()
        assert (await carol.event("presence", user=user, online=False))["last_seen"] > 0
        await settle(clients[other])
        assert queued_of(clients[other], "presence") == []
        clients[user] = await join(user)
        await carol.event("presence", user=user, online=True)
        await settle(clients[other])
        assert queued_of(clients[other], "presence") == []
    alice, bob = clients["alice"], clients["bob"]
    assert [f["user"] for f in alice.welcome["friends"]] == ["carol"]
    assert [f["user"] for f in bob.welcome["friends"]] == ["carol"]


async def test_a_block_hides_typing_both_ways(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, carol = await join("alice"), await join("bob"), await join("carol")
    conv = await group(alice, "bob", "carol")
    await bob.ok("block", user="alice")
    await quiet(alice, bob, carol)

    await alice.send_frame({"t": "typing", "conv": conv})
    await bob.send_frame({"t": "typing", "conv": conv})
    await carol.send_frame({"t": "typing", "conv": conv})
    await settle(alice, bob, carol, alice, bob)
    assert [e["user"] for e in queued_of(carol, "typing")] == ["alice", "bob"]
    assert [e["user"] for e in queued_of(bob, "typing")] == ["carol"]
    assert [e["user"] for e in queued_of(alice, "typing")] == ["carol"]


async def _blocked_group(join: Any) -> tuple[RawClient, RawClient, RawClient, RawClient, str]:
    """alice, bob (two devices) and carol in a group; bob blocks alice."""
    alice, bob, bob_2, carol = await join("alice"), await join("bob"), await join("bob"), await join("carol")
    conv = await group(carol, "alice", "bob")
    await bob.ok("block", user="alice")
    await quiet(alice, bob, bob_2, carol)
    return alice, bob, bob_2, carol, conv


async def test_group_messages_from_a_blocked_user_reach_the_blocker_as_stubs(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, bob_2, carol, conv = await _blocked_group(join)

    card = video_card("clip", duration_ms=10_000)
    ok1 = await alice.ok("send", conv=conv, cmid="a1", text="can bob read this?")
    ok2 = await carol.ok("send", conv=conv, cmid="c1", text="carol here")
    share = await alice.ok("share", cmid="a2", convs=[conv], video=card)
    ok3 = share["results"][0]

    full = await carol.event("msg", seq=1)
    assert full["text"] == "can bob read this?"
    assert (await carol.event("msg", seq=3))["video"] == card
    for device in (bob, bob_2):
        first = await device.event("msg", seq=1)
        assert first == {"t": "msg", "conv": conv, "seq": 1, "from": "alice", "ts": ok1["ts"],
                         "kind": "text", "cmid": "a1", "hidden": True}
        assert (await device.event("msg", seq=2))["text"] == "carol here"
        third = await device.event("msg", seq=3)
        assert third == {"t": "msg", "conv": conv, "seq": 3, "from": "alice", "ts": ok3["ts"],
                         "kind": "video", "cmid": "a2", "hidden": True}
    # The blocked user still reads the blocker.
    await bob.ok("send", conv=conv, cmid="b1", text="bob speaks")
    assert (await alice.event("msg", seq=4))["text"] == "bob speaks"
    assert ok2["seq"] == 2

    # History: stubs without reactions, whatever others reacted.
    await carol.ok("react", conv=conv, seq=1, emoji="👍", on=True)
    stored = await history_all(bob, conv)
    assert [m["seq"] for m in stored] == [1, 2, 3, 4]
    assert stored[0] == {**stub(full), "reactions": []}
    assert stored[2] == {"conv": conv, "seq": 3, "from": "alice", "ts": ok3["ts"], "kind": "video",
                         "cmid": "a2", "hidden": True, "reactions": []}
    assert stored[1]["text"] == "carol here" and "hidden" not in stored[1]
    theirs = await history_all(carol, conv)
    assert theirs[0]["text"] == "can bob read this?" and theirs[0]["reactions"][0]["count"] == 1


async def test_resume_gives_the_blocker_stubs_and_unblock_reveals_everything(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, bob_2, carol, conv = await _blocked_group(join)
    await bob.close()
    await bob_2.close()
    texts = {}
    for n, sender in enumerate((alice, carol, alice), start=1):
        ok = await sender.ok("send", conv=conv, cmid=f"m{n}", text=f"text {n}")
        texts[ok["seq"]] = f"text {n}"

    bob = await join("bob", resume={conv: 0})
    resumed = [await bob.event("msg", conv=conv, seq=seq) for seq in (1, 2, 3)]
    assert [m.get("hidden", False) for m in resumed] == [True, False, True]
    assert [m.get("text") for m in resumed] == [None, "text 2", None]
    assert all("text" not in m for m in resumed if m.get("hidden"))

    await bob.ok("unblock", user="alice")
    assert [m["text"] for m in await history_all(bob, conv)] == ["text 1", "text 2", "text 3"]
    again = await join("bob", resume={conv: 0})
    assert [(await again.event("msg", seq=seq))["text"] for seq in (1, 2, 3)] == list(texts.values())
    await alice.ok("send", conv=conv, cmid="m4", text="text 4")
    assert (await bob.event("msg", seq=4))["text"] == "text 4"


async def test_reactions_from_a_blocked_user_do_not_reach_the_blocker(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, bob_2, carol, conv = await _blocked_group(join)
    await carol.ok("send", conv=conv, cmid="c1", text="react to me")
    await alice.ok("react", conv=conv, seq=1, emoji="🔥", on=True)
    await carol.ok("react", conv=conv, seq=1, emoji="😂", on=True)
    for device in (bob, bob_2):
        reaction = await device.event("reaction")
        assert (reaction["user"], reaction["emoji"]) == ("carol", "😂")
    assert (await carol.event("reaction"))["user"] == "alice"
    # The blocker's own reactions still reach the user they block.
    await bob.ok("react", conv=conv, seq=1, emoji="👀", on=True)
    assert (await alice.event("reaction", user="bob"))["emoji"] == "👀"


async def test_a_block_ends_what_a_watcher_hears(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, carol, dave = await join("alice"), await join("carol"), await join("dave")
    await group(carol, "alice", "dave")
    await befriend(carol, dave)
    for watcher in (alice, dave):  # alice watches carol through their group; dave is her friend
        assert (await watcher.ok("presence", users=["carol"]))["users"][0]["online"] is True
    await carol.ok("block", user="alice")
    await settle(carol, alice)
    assert queued_of(alice, "presence") == []  # nothing names the blocker; it just goes quiet
    await quiet(alice)
    await carol.close()
    await dave.event("presence", user="carol", online=False)
    await join("carol")
    await dave.event("presence", user="carol", online=True)
    await settle(alice)
    assert queued_of(alice, "presence") == []


async def test_a_blocked_user_never_pulls_the_blocker_into_a_group(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, carol = await join("alice"), await join("bob"), await join("carol")
    mine = await group(alice, "bob", "carol", title="alice's")
    theirs = await group(carol, "alice", title="carol's")
    await bob.ok("block", user="alice")
    await bob.ok("group.leave", conv=mine)
    await quiet(alice, bob, carol)

    # Not back into the group bob left, not into a new one, not into a third party's.
    assert (await alice.ok("group.add", conv=mine, members=["bob"]))["refused"] == ["bob"]
    created = await alice.ok("group.create", members=["bob", "carol"], title="you can't leave")
    assert created["refused"] == ["bob"]
    assert (await alice.ok("group.add", conv=theirs, members=["bob"]))["refused"] == ["bob"]
    await settle(alice, bob, carol)
    assert queued_of(bob, "conv") == []
    assert [c["conv"] for c in (await join("bob")).welcome["convs"]] == []
    # Nor may bob add alice anywhere while he blocks her.
    assert (await bob.ok("group.create", members=["alice"], title="x"))["refused"] == ["alice"]
    assert (await carol.ok("group.add", conv=mine, members=["bob"]))["refused"] == []

    # A third party may put both in one group; bob then sees alice's messages as stubs.
    assert (await carol.ok("group.add", conv=theirs, members=["bob"]))["refused"] == []
    await alice.ok("send", conv=theirs, cmid="a1", text="hi all")
    assert (await bob.event("msg", conv=theirs))["hidden"] is True
