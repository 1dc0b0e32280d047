"""Presence: first device in, last device out, last_seen, watchers, restarts, no leaks."""

from __future__ import annotations

import asyncio
import time

from socialhelp import (
    befriend,
    error_code,
    group,
    queued_of,
    quiet,
    settle,
    social_hub,
    strangers_in_a_group,
    until,
)
from wire import Dial, HubFactory, HubProcess, RawClient, token


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_presence_on_first_connect_and_last_leave_only(hub_factory: HubFactory, dial: Dial) -> None:
    server, join = await social_hub(hub_factory, dial)
    phone, bob = await join("alice", device="phone"), await join("bob")
    await befriend(phone, bob)
    await phone.close()
    await bob.event("presence", user="alice", online=False)

    # First device: one event, online and no last_seen.
    phone = await join("alice", device="phone")
    assert await bob.event("presence") == {"t": "presence", "user": "alice", "online": True,
                                           "last_seen": None}
    laptop = await join("alice", device="laptop")  # a second device: nothing
    await settle(laptop, bob)
    assert queued_of(bob, "presence") == []

    await phone.close()  # one device left: still online, nothing said
    await until(lambda: len(server.hub.sessions.get("alice", ())) == 1)
    await settle(bob)
    assert queued_of(bob, "presence") == []

    before = now_ms()
    await laptop.close()  # the last one: offline, with when
    gone = await bob.event("presence")
    assert (gone["user"], gone["online"]) == ("alice", False)
    assert before <= gone["last_seen"] <= now_ms()
    await settle(bob)
    assert bob.queued() == []

    # last_seen is kept and reported: on request, and in a later welcome.
    asked = (await bob.ok("presence", users=["alice"]))["users"]
    assert asked == [{"user": "alice", "online": False, "last_seen": gone["last_seen"]}]
    bob_2 = await join("bob")
    assert bob_2.welcome["friends"] == [{"user": "alice", "online": False, "last_seen": gone["last_seen"]}]
    alice = await join("alice")
    assert alice.welcome["friends"] == [{"user": "bob", "online": True, "last_seen": None}]
    for device in (bob, bob_2):  # every device of a friend hears it
        assert (await device.event("presence", user="alice"))["online"] is True


async def test_two_devices_connecting_at_once_announce_online_once(
    hub_factory: HubFactory, dial: Dial
) -> None:
    server, join = await social_hub(hub_factory, dial)
    alice, bob = await join("alice"), await join("bob")
    await befriend(alice, bob)
    for _ in range(5):
        await alice.close()
        await bob.event("presence", user="alice", online=False)
        phone, laptop = await asyncio.gather(join("alice", device="phone"), join("alice", device="laptop"))
        assert (await bob.event("presence", user="alice"))["online"] is True
        await settle(phone, laptop, bob)
        assert queued_of(bob, "presence") == []
        await phone.close()
        await until(lambda: len(server.hub.sessions.get("alice", ())) == 1)
        alice = laptop


async def test_leaving_and_coming_straight_back_ends_online(hub_factory: HubFactory, dial: Dial) -> None:
    server, join = await social_hub(hub_factory, dial)
    alice, bob = await join("alice"), await join("bob")
    await befriend(alice, bob)
    for n in range(10):
        await alice.close()
        alice = await join("alice")  # perhaps before the hub has handled the leave
        await until(lambda: len(server.hub.sessions.get("alice", ())) == 1)
        # A store write queues behind the leave's last_seen write, after which the leave is done.
        await bob.ok("friend.request", user=f"nobody{n}")
        await settle(bob)
        # Whatever the interleaving, bob's last word about alice is that she is online
        # (nothing if the new device came before the leave; a repeated online at worst).
        about_alice = [e["online"] for e in queued_of(bob, "presence", user="alice")]
        assert about_alice in ([], [True], [False, True]), about_alice
        await quiet(bob)
    assert (await bob.ok("presence", users=["alice"]))["users"][0]["online"] is True


async def test_a_friend_who_also_watches_hears_once(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, bob = await join("alice"), await join("bob")
    await befriend(alice, bob)
    assert (await bob.ok("presence", users=["alice"]))["users"][0]["online"] is True
    await alice.close()
    await bob.event("presence", user="alice", online=False)
    await join("alice")
    await bob.event("presence", user="alice", online=True)
    await settle(bob)
    assert queued_of(bob, "presence") == []


async def test_presence_request_shows_only_what_the_asker_may_see(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, carol = await join("alice"), await join("bob"), await join("carol")
    dave, eve = await join("dave"), await join("eve")
    await befriend(alice, bob)
    await group(carol, "alice")  # carol shares a group with alice: visible, not a friend
    await eve.ok("block", user="alice")
    # dave and eve have been seen before; alice must not learn when.
    for user in ("dave", "eve"):
        await (dave if user == "dave" else eve).close()
    dave, eve = await join("dave"), await join("eve")
    await quiet(alice, bob, carol, dave, eve)

    reply = await alice.ok("presence", users=["alice", "bob", "carol", "dave", "eve", "nobody"])
    assert reply["users"] == [
        {"user": "alice", "online": True, "last_seen": None},
        {"user": "bob", "online": True, "last_seen": None},
        {"user": "carol", "online": True, "last_seen": None},
        {"user": "dave", "online": False, "last_seen": None},  # a stranger: nothing leaks
        {"user": "eve", "online": False, "last_seen": None},   # blocks alice: nothing leaks
        {"user": "nobody", "online": False, "last_seen": None},
    ]

    # carol is watched now; dave and eve are not.
    for client in (carol, dave, eve):
        await client.close()
    carol_gone = await alice.event("presence", user="carol", online=False)
    assert carol_gone["last_seen"] > 0
    await join("carol")
    await alice.event("presence", user="carol", online=True)
    await join("dave")
    await join("eve")
    await settle(alice)
    assert queued_of(alice, "presence", user="dave") == []
    assert queued_of(alice, "presence", user="eve") == []
    assert queued_of(bob, "presence") == []  # not bob's friends, not watched by bob


async def test_strangers_hear_nothing_of_a_user(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, bob, stranger = await join("alice"), await join("bob"), await join("stranger")
    await befriend(alice, bob)
    # Watching a stranger is answered, but not honoured.
    await stranger.ok("presence", users=["alice"])
    await alice.close()
    await bob.event("presence", user="alice", online=False)
    await join("alice")
    await bob.event("presence", user="alice", online=True)
    await settle(stranger)
    assert stranger.queued() == []


async def test_a_connection_watches_at_most_500_users(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice = await join("alice")
    first, second = [f"u{n}" for n in range(300)], [f"v{n}" for n in range(201)]
    await group(alice, *first)  # sharing a group makes them visible, so watched
    await group(alice, *second)
    assert len((await alice.ok("presence", users=first))["users"]) == 300
    reply = await alice.call("presence", users=second)
    assert error_code(reply) == "bad_request" and "500" in reply["message"]
    await alice.ok("presence", users=first[100:] + second[:200])  # 500 in all
    other_device = await join("alice")  # the bound is per connection
    await other_device.ok("presence", users=second)


async def test_a_restart_shows_nobody_online_and_keeps_last_seen(hub_factory: HubFactory, dial: Dial) -> None:
    first, join = await social_hub(hub_factory, dial)
    alice, bob = await join("alice"), await join("bob")
    await befriend(alice, bob)
    before = now_ms()
    await first.close()  # both still connected: the hub records when it last saw them
    after = now_ms()

    _, join = await social_hub(hub_factory, dial)
    bob = await join("bob")
    [alice_state] = bob.welcome["friends"]
    assert alice_state["user"] == "alice" and alice_state["online"] is False
    assert before <= alice_state["last_seen"] <= after
    assert (await bob.ok("presence", users=["alice"]))["users"] == [alice_state]
    await join("alice")
    assert (await bob.event("presence", user="alice"))["online"] is True


async def _open(url: str, user: str) -> RawClient:
    client = await RawClient.open(url)
    await client.hello(token(user))
    return client


async def test_a_killed_hub_restarts_with_nobody_online(hub_process: HubProcess) -> None:
    hub_process.start()
    alice, bob = await _open(hub_process.url, "alice"), await _open(hub_process.url, "bob")
    await befriend(alice, bob)
    await alice.close()
    last_seen = (await bob.event("presence", user="alice", online=False))["last_seen"]
    alice = await _open(hub_process.url, "alice")
    await bob.event("presence", user="alice", online=True)
    hub_process.kill()  # no chance to record anything
    await alice.close()
    await bob.close()

    hub_process.start()
    bob = await _open(hub_process.url, "bob")
    try:
        assert bob.welcome["friends"] == [{"user": "alice", "online": False, "last_seen": last_seen}]
        assert (await bob.ok("presence", users=["alice"]))["users"] == bob.welcome["friends"]
    finally:
        await bob.close()


async def test_leaving_a_group_ends_presence_between_strangers_both_ways(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, carol, conv = await strangers_in_a_group(join)
    # alice and bob are strangers who share carol's group: each watches the other.
    assert (await alice.ok("presence", users=["bob"]))["users"][0]["online"] is True
    assert (await bob.ok("presence", users=["alice"]))["users"][0]["online"] is True
    await bob.ok("group.leave", conv=conv)
    # At once, each looks offline and never seen to the other, as after a block.
    gone = {"t": "presence", "online": False, "last_seen": None}
    assert await alice.event("presence", user="bob") == {**gone, "user": "bob"}
    assert await bob.event("presence", user="alice") == {**gone, "user": "alice"}
    await quiet(alice, bob, carol)

    # And never again: neither hears the other come and go.
    await bob.close()
    await join("bob")
    await alice.close()
    alice = await join("alice")
    await settle(alice, carol)
    assert queued_of(alice, "presence") == []
    # Asking again shows nothing either.
    assert (await alice.ok("presence", users=["bob"]))["users"] == [
        {"user": "bob", "online": False, "last_seen": None}]


async def test_being_removed_from_a_group_ends_presence_between_strangers(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, carol, dave = await join("alice"), await join("bob"), await join("carol"), await join("dave")
    conv = await group(carol, "alice", "bob", "dave")
    await befriend(alice, dave)  # friends keep each other whatever the group does
    await alice.ok("presence", users=["bob", "dave"])
    await bob.ok("presence", users=["alice"])
    await carol.ok("group.remove", conv=conv, members=["alice"])
    assert (await alice.event("presence", user="bob"))["online"] is False
    await quiet(alice, bob, carol, dave)

    for user in ("bob", "dave"):
        client = bob if user == "bob" else dave
        await client.close()
        if user == "dave":
            await alice.event("presence", user="dave", online=False)
    await join("bob")
    await join("dave")
    await alice.event("presence", user="dave", online=True)
    await alice.close()
    await settle(carol)
    alice = await join("alice")
    await settle(alice)
    assert queued_of(alice, "presence", user="bob") == []
