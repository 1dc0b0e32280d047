"""The SDK's social layer against a real hub: friends, presence, typing, read, react, unsend,
watch-together and blocks, each through its helper and its typed event."""

from __future__ import annotations

import asyncio

import pytest
from sdkhelp import HubFactory, ProxyFactory, SdkFactory, messages, next_event, quiet

from clipwire.client import (
    BadRequest,
    Client,
    Disconnected,
    Forbidden,
    FriendEvent,
    FriendRequest,
    Message,
    NotFound,
    Presence,
    Reaction,
    ReactionSummary,
    ReadReceipt,
    Reconnected,
    Reply,
    Typing,
    Unsent,
    WatchState,
)

VIDEO = {"id": "v42", "url": "https://videos.example/v/42", "caption": "piano cat",
         "duration_ms": 60_000}


async def befriend(a: Client, b: Client) -> None:
    """``a`` asks, ``b`` accepts; both have seen the accept."""
    await a.friend_request(b.user)
    await b.accept_friend(a.user)
    for client, other in ((a, b.user), (b, a.user)):
        await next_event(client, FriendEvent, where=lambda e, o=other: (e.user, e.state) == (o, "accepted"))


async def test_friend_request_accept_and_remove(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory(dm_policy="friends")
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    with pytest.raises(Forbidden):
        await alice.send_text("hi", to="bob")  # not friends yet: refused, nothing created
    assert alice.conversations == {}

    await alice.friend_request("bob")
    assert await next_event(alice, FriendEvent) == FriendEvent("bob", "requested", "out", was=None)
    assert alice.friend_requests == [FriendRequest("bob", "out")]
    assert await next_event(bob, FriendEvent) == FriendEvent("alice", "requested", "in", was=None)
    assert bob.friend_requests == [FriendRequest("alice", "in")]
    await alice.friend_request("bob")  # again: a no-op
    with pytest.raises(NotFound):
        await alice.accept_friend("bob")  # the request is alice's own

    await bob.accept_friend("alice")
    assert await next_event(bob, FriendEvent) == FriendEvent("alice", "accepted", was="in")
    assert await next_event(alice, FriendEvent) == FriendEvent("bob", "accepted", was="out")
    assert await next_event(alice, Presence) == Presence("bob", True, None)  # new friends see each other
    assert alice.friends == {"bob": Presence("bob", True, None)} and alice.friend_requests == []
    assert set(bob.friends) == {"alice"}
    sent = await alice.send_text("hi bob", to="bob")
    assert (await messages(bob, 1))[0].text == "hi bob"

    carol = await sdk(hub.url, "carol")  # bob's second request arrives while carol is away
    await carol.aclose()
    await bob.friend_request("carol")
    carol = await sdk(hub.url, "carol")
    assert carol.friend_requests == [FriendRequest("bob", "in")]
    assert bob.friend_requests == [FriendRequest("carol", "out")]
    second = await sdk(hub.url, "bob")
    assert second.friends == {"alice": Presence("alice", True, None)}
    assert second.friend_requests == [FriendRequest("carol", "out")]
    await carol.remove_friend("bob")  # declined
    assert await next_event(bob, FriendEvent, where=lambda e: e.state == "removed") == FriendEvent(
        "carol", "removed", was="out")

    await bob.remove_friend("alice")
    assert await next_event(alice, FriendEvent) == FriendEvent("bob", "removed", was="friends")
    assert alice.friends == {}
    with pytest.raises(Forbidden):
        await alice.send_text("still there?", conv=sent.conv)


async def test_presence_follows_friends_devices(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory(dm_policy="friends")
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    await befriend(alice, bob)
    await next_event(alice, Presence)

    phone = await sdk(hub.url, "bob")  # a second device: bob was online already
    await phone.aclose()
    await bob.aclose()  # his last device leaves
    offline = await next_event(alice, Presence)
    assert (offline.user, offline.online) == ("bob", False) and offline.last_seen is not None
    assert alice.friends["bob"] == offline
    assert not [e for e in await quiet(alice, 0.2) if isinstance(e, Presence)]  # once, not per device

    bob = await sdk(hub.url, "bob")
    assert await next_event(alice, Presence) == Presence("bob", True, None)
    assert bob.friends == {"alice": Presence("alice", True, None)}

    dave = await sdk(hub.url, "dave")
    answer = await dave.presence(["bob", "dave"])  # a stranger sees nothing
    assert answer == [Presence("bob", False, None), Presence("dave", True, None)]
    [seen] = await alice.presence(["bob"])  # last_seen: when his last device last left
    assert (seen.user, seen.online, seen.last_seen) == ("bob", True, offline.last_seen)


async def test_typing_reaches_the_other_members_only(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory()
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    conv = (await alice.send_text("hi", to="bob")).conv
    await messages(bob, 1)
    for _ in range(6):  # the hub lets 3 through at once, then 1 a second
        await alice.typing(conv)
    got = [e for e in await quiet(bob, 0.5) if isinstance(e, Typing)]
    assert got[0] == Typing(conv, "alice") and 1 <= len(got) <= 4
    assert not [e for e in await quiet(alice, 0.1) if isinstance(e, Typing)]


async def test_read_markers_and_receipts(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory()
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    bob_phone = await sdk(hub.url, "bob")
    conv = await alice.create_group(["bob"], "Crew")
    for n in range(3):
        await alice.send_text(f"m{n}", conv=conv)
    await messages(bob, 3)

    assert await bob.read(conv, 2) == 2
    assert await next_event(alice, ReadReceipt) == ReadReceipt(conv, "bob", 2)
    assert await next_event(bob_phone, ReadReceipt) == ReadReceipt(conv, "bob", 2)  # his other device
    assert bob.conversations[conv].read_seq == 2 and bob_phone.conversations[conv].read_seq == 2
    assert await bob.read(conv, 1) == 2  # never backwards, and no receipt
    assert not [e for e in await quiet(alice, 0.2) if isinstance(e, ReadReceipt)]
    with pytest.raises(BadRequest):
        await bob.read(conv, 9)

    later = await sdk(hub.url, "bob")
    assert (later.conversations[conv].read_seq, later.conversations[conv].unread) == (2, 1)
    with pytest.raises(Forbidden):
        await (await sdk(hub.url, "mallory")).read(conv, 1)


async def test_reactions_to_a_moment_and_the_history_summary(hub_factory: HubFactory,
                                                             sdk: SdkFactory) -> None:
    hub = await hub_factory(dm_policy="friends")
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    await befriend(alice, bob)
    [share] = await alice.share_video(VIDEO, to=["bob"], text="watch this")
    assert share.ok and share.conv is not None and share.seq is not None
    conv, seq = share.conv, share.seq
    text = await alice.send_text("and this", conv=conv)

    await bob.react(conv, seq, "🔥", at_ms=12_000)
    assert await next_event(alice, Reaction) == Reaction(conv, seq, "bob", "🔥", True, 12_000)
    await bob.react(conv, seq, "👍")
    await alice.react(conv, seq, "🔥", at_ms=30_000)
    assert await next_event(bob, Reaction, where=lambda e: e.user == "alice") == Reaction(
        conv, seq, "alice", "🔥", True, 30_000)

    [mine] = [m for m in await bob.history(conv) if m.seq == seq]
    assert set(mine.reactions) == {ReactionSummary("🔥", 2, True, (12_000, 30_000)),
                                   ReactionSummary("👍", 1, True)}
    [theirs] = [m for m in await alice.history(conv) if m.seq == seq]
    assert {(r.emoji, r.me) for r in theirs.reactions} == {("🔥", True), ("👍", False)}

    await bob.react(conv, seq, "👍", on=False)
    assert await next_event(alice, Reaction, where=lambda e: not e.on) == Reaction(
        conv, seq, "bob", "👍", False)
    with pytest.raises(BadRequest):
        await bob.react(conv, seq, "🔥", at_ms=61_000)  # past the end of the video
    with pytest.raises(BadRequest):
        await bob.react(conv, text.seq, "🔥", at_ms=1_000)  # a moment of a text message
    with pytest.raises(NotFound):
        await bob.react(conv, 99, "🔥")

    reply = await bob.reply_to(conv, seq, "that jump!", at_ms=42_000)
    got = (await messages(alice, 1))[0]
    assert got.seq == reply.seq and got.reply == Reply(seq, 42_000)
    with pytest.raises(BadRequest):
        await bob.reply_to(conv, 99, "to nothing")


async def test_unsend_leaves_a_tombstone(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory()
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    first = await alice.send_text("oops", to="bob")
    await alice.send_text("fine", to="bob")
    await messages(bob, 2)

    await alice.unsend(first.conv, first.seq)
    assert await next_event(bob, Unsent) == Unsent(first.conv, 1)
    await alice.unsend(first.conv, first.seq)  # again: ok, nothing new
    with pytest.raises(Forbidden):
        await bob.unsend(first.conv, 2)  # not his message
    page = await bob.history(first.conv)
    assert [(m.seq, m.unsent, m.text) for m in page] == [(1, True, None), (2, False, "fine")]

    late = await sdk(hub.url, "bob", resume={first.conv: 0})  # resume shows the tombstone too
    assert [(m.seq, m.unsent, m.text) for m in await messages(late, 2)] == [
        (1, True, None), (2, False, "fine")]


async def test_unsent_while_waiting_in_a_hole_is_delivered_as_a_tombstone(
        hub_factory: HubFactory, sdk: SdkFactory, proxy_factory: ProxyFactory) -> None:
    server = await hub_factory()
    proxy = await proxy_factory(server.port)
    proxy.filter = lambda frame: "drop" if frame["t"] == "msg" and frame["seq"] == 1 else "pass"
    bob = await sdk(proxy.url, "bob", hole_grace=1.0)
    alice = await sdk(server.url, "alice")
    await alice.send_text("one", to="bob")
    second = await alice.send_text("two", to="bob")
    await alice.unsend(second.conv, second.seq)  # bob holds 2 while 1 is missing
    assert await next_event(bob, Unsent) == Unsent(second.conv, 2)
    got = await messages(bob, 2)
    assert [(m.seq, m.text, m.unsent) for m in got] == [(1, "one", False), (2, None, True)]


async def test_watch_together(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory()
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    conv = await alice.create_group(["bob", "carol"], "Movie night")

    state = await alice.watch(conv, "v42", 12_000, True)
    assert (state.by, state.video_id, state.pos_ms, state.playing) == ("alice", "v42", 12_000, True)
    assert await next_event(bob, WatchState) == state
    assert alice.conversations[conv].watch == state and bob.conversations[conv].watch == state

    paused = await bob.watch(conv, "v42", 15_500, False)
    assert paused.ts > state.ts  # last writer wins by hub time
    assert await next_event(alice, WatchState) == paused
    carol = await sdk(hub.url, "carol")  # late: the welcome has the current state
    assert carol.conversations[conv].watch == paused
    with pytest.raises(Forbidden):
        await (await sdk(hub.url, "mallory")).watch(conv, "v42", 0, True)


async def test_watch_state_expires(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory(watch_ttl_s=0.2)
    alice = await sdk(hub.url, "alice")
    conv = await alice.create_group(["bob"], "Crew")
    await alice.watch(conv, "v1", 0, True)
    assert (await sdk(hub.url, "bob")).conversations[conv].watch is not None
    await asyncio.sleep(0.3)
    assert (await sdk(hub.url, "bob")).conversations[conv].watch is None


async def test_block_hides_and_refuses(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory(dm_policy="friends")
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    carol = await sdk(hub.url, "carol")
    for other in (alice, bob):  # carol may add only her friends to her group
        await befriend(carol, other)
    await befriend(alice, bob)
    dm = (await alice.send_text("hi", to="bob")).conv
    group = await carol.create_group(["alice", "bob"], "Crew")

    await alice.block("bob")
    assert await next_event(alice, FriendEvent) == FriendEvent("bob", "removed", was="friends")
    assert await next_event(alice, Presence) == Presence("bob", False, None)
    # The blocked side sees an unfriend, nothing naming the block (SECURITY.md).
    assert await next_event(bob, FriendEvent) == FriendEvent("alice", "removed", was="friends")
    assert list(alice.friends) == list(bob.friends) == ["carol"]
    with pytest.raises(Forbidden):
        await bob.send_text("why?", conv=dm)
    await bob.friend_request("alice")  # looks sent; stored nowhere, and alice hears nothing
    assert not [e for e in await quiet(alice, 0.3) if isinstance(e, FriendEvent | Presence)]
    assert [e for e in await quiet(bob, 0.3) if isinstance(e, Presence) and e.user == "alice"] == []

    said = await bob.send_text("hello crew", conv=group)
    await bob.typing(group)
    seen = [e for e in await quiet(alice, 0.5) if isinstance(e, Message | Typing)]
    stub = Message(group, said.seq, "bob", said.ts, "text", cmid=said.cmid, hidden=True)
    assert seen == [stub]  # a place in the order, no body, no typing
    assert (await next_event(carol, Message, where=lambda m: m.sender == "bob")).text == "hello crew"
    assert (await alice.history(group))[-1].hidden

    await alice.unblock("bob")
    assert (await alice.history(group))[-1].text == "hello crew"
    with pytest.raises(Forbidden):
        await bob.send_text("friends again?", conv=dm)  # unblocking restores no friendship


async def test_changes_while_away_arrive_after_reconnect(hub_factory: HubFactory, sdk: SdkFactory,
                                                         proxy_factory: ProxyFactory) -> None:
    hub = await hub_factory(dm_policy="everyone")  # strangers in a group, so a friend request is news
    proxy = await proxy_factory(hub.port)
    bob = await sdk(proxy.url, "bob")
    alice = await sdk(hub.url, "alice")
    conv = await alice.create_group(["bob"], "Crew")
    proxy.refuse = True
    proxy.cut()
    await next_event(bob, Disconnected)
    await alice.friend_request("bob")
    state = await alice.watch(conv, "v7", 1_000, True)
    proxy.refuse = False

    await next_event(bob, Reconnected, timeout=10)
    assert await next_event(bob, FriendEvent) == FriendEvent("alice", "requested", "in")
    assert await next_event(bob, WatchState) == state
    assert bob.friend_requests == [FriendRequest("alice", "in")]
    assert bob.conversations[conv].watch == state


async def test_a_group_leaves_out_whom_the_policy_refuses(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory(dm_policy="friends")
    alice, bob = await sdk(hub.url, "alice"), await sdk(hub.url, "bob")
    await befriend(alice, bob)
    conv = await alice.create_group(["bob", "carol"], "Crew")
    assert alice.conversations[conv].members == ("alice", "bob")  # carol is no friend of alice
    assert await alice.add_members(conv, ["carol", "dave"]) == ["carol", "dave"]
