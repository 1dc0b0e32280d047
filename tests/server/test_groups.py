"""Groups: create, add, remove, leave, the owner's rules, the member bound, conv events."""

from __future__ import annotations

from typing import Any

from socialhelp import befriend, error_code, queued_of, quiet, settle, social_hub
from wire import Connect, Dial, HubFactory, RawClient

from clipwire.server import ClipwireServer


def members_of(event: dict[str, Any]) -> list[str]:
    return sorted(event["members"])


async def _group(owner: RawClient, *members: str, title: str = "crew") -> str:
    conv: str = (await owner.ok("group.create", members=list(members), title=title))["conv"]
    return conv


async def test_create_announces_the_group_to_every_members_devices(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, alice_laptop = await connect("alice"), await connect("alice")
    bob, carol, dave = await connect("bob"), await connect("carol"), await connect("dave")
    reply = await alice.ok("group.create", members=["bob", "carol", "alice", "bob"], title="Trip")
    conv = reply["conv"]
    assert conv.startswith("g:") and set(reply) == {"t", "id", "conv", "refused"}
    assert reply["refused"] == []  # the default policy of these tests: everyone
    for device in (alice, alice_laptop, bob, carol):
        event = await device.event("conv")
        assert members_of(event) == ["alice", "bob", "carol"]
        assert {k: v for k, v in event.items() if k != "members"} == {
            "t": "conv", "conv": conv, "kind": "group", "title": "Trip", "owner": "alice", "last_seq": 0}
    await dave.no_event()

    listed = {c["conv"]: c for c in (await connect("carol")).welcome["convs"]}
    assert listed[conv]["title"] == "Trip" and sorted(listed[conv]["members"]) == ["alice", "bob", "carol"]


async def test_create_without_title_or_members(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    conv = (await alice.ok("group.create"))["conv"]
    event = await alice.event("conv")
    assert (event["conv"], event["title"], event["members"], event["owner"]) == (conv, "", ["alice"], "alice")
    assert (await alice.ok("send", conv=conv, cmid="c", text="note to self"))["seq"] == 1


async def test_add_by_any_member_announces_to_old_and_new(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    conv = await _group(alice, "bob")
    await alice.ok("send", conv=conv, cmid="early", text="before carol")
    for client in (alice, bob):
        await client.event("conv")
    await bob.event("msg")

    added = await bob.ok("group.add", conv=conv, members=["carol", "bob"])
    assert (set(added), added["refused"]) == ({"t", "id", "refused"}, [])
    for client in (alice, bob, carol):
        event = await client.event("conv", conv=conv)
        assert members_of(event) == ["alice", "bob", "carol"]
        assert (event["owner"], event["last_seq"]) == ("alice", 1)
    # A member who joins sees the whole history and hears new messages.
    assert [m["text"] for m in (await carol.ok("history", conv=conv))["messages"]] == ["before carol"]
    await alice.ok("send", conv=conv, cmid="late", text="welcome carol")
    assert (await carol.event("msg", conv=conv))["text"] == "welcome carol"

    # Adding only existing members changes nothing and announces nothing.
    await alice.ok("group.add", conv=conv, members=["bob"])
    await bob.no_event("conv")


async def test_member_bound_on_create_and_add(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory(max_group_members=3)
    alice = await dial(server.url, "alice")
    too_many = await alice.call("group.create", members=["b", "c", "d"], title="four")
    assert (too_many["t"], too_many["code"]) == ("error", "too_large")
    assert "3" in too_many["message"]
    conv = (await alice.ok("group.create", members=["b", "c"], title="three"))["conv"]
    await alice.event("conv")
    full = await alice.call("group.add", conv=conv, members=["d"])
    assert (full["t"], full["code"]) == ("error", "too_large")
    await alice.no_event("conv")
    # Nothing changed: still three members, and no group was made by the refused create.
    again = await dial(server.url, "alice")
    assert [(c["conv"], len(c["members"])) for c in again.welcome["convs"]] == [(conv, 3)]


async def test_remove_is_for_the_owner_only(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    conv = await _group(alice, "bob", "carol")
    await alice.ok("send", conv=conv, cmid="m1", text="one")
    for client in (alice, bob, carol):
        await client.event("conv")
    for client in (bob, carol):
        await client.event("msg", seq=1)

    refused = await bob.call("group.remove", conv=conv, members=["carol"])
    assert (refused["t"], refused["code"]) == ("error", "forbidden")

    await alice.ok("group.remove", conv=conv, members=["carol", "nobody", "alice"])
    assert await carol.event("conv") == {"t": "conv", "conv": conv, "kind": "group", "removed": True}
    for client in (alice, bob):
        event = await client.event("conv")
        assert (members_of(event), event["owner"]) == (["alice", "bob"], "alice")

    # Removed members lose access, and no longer receive messages.
    await bob.ok("send", conv=conv, cmid="m2", text="two")
    await carol.no_event("msg")
    for t, fields in (("history", {}), ("send", {"cmid": "x", "text": "let me in"})):
        reply = await carol.call(t, conv=conv, **fields)
        assert (reply["t"], reply["code"]) == ("error", "forbidden")
    assert conv not in [c["conv"] for c in (await connect("carol")).welcome["convs"]]


async def test_leave_tells_all_the_leavers_devices_and_the_rest(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, bob, bob_laptop = await connect("alice"), await connect("bob"), await connect("bob")
    conv = await _group(alice, "bob")
    for client in (alice, bob, bob_laptop):
        await client.event("conv")
    await bob.ok("group.leave", conv=conv)
    for device in (bob, bob_laptop):
        assert await device.event("conv") == {"t": "conv", "conv": conv, "kind": "group", "removed": True}
    event = await alice.event("conv")
    assert (event["members"], event["owner"]) == (["alice"], "alice")
    again = await bob.call("group.leave", conv=conv)
    assert (again["t"], again["code"]) == ("error", "forbidden")


async def test_owner_leaving_hands_the_group_to_the_earliest_joined(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    conv = await _group(alice, "bob")
    await alice.ok("group.add", conv=conv, members=["carol"])
    await alice.ok("group.leave", conv=conv)
    for client in (bob, carol):
        event = await client.event("conv", owner="bob")
        assert members_of(event) == ["bob", "carol"]
    # The new owner has the owner's powers; the others do not.
    refused = await carol.call("group.remove", conv=conv, members=["bob"])
    assert (refused["t"], refused["code"]) == ("error", "forbidden")
    await bob.ok("group.remove", conv=conv, members=["carol"])
    await carol.event("conv", removed=True)
    # The last member leaving leaves an empty group nobody can reach.
    await bob.ok("group.leave", conv=conv)
    await bob.event("conv", removed=True)
    gone = await bob.call("history", conv=conv)
    assert (gone["t"], gone["code"]) == ("error", "forbidden")


async def test_group_ops_on_a_dm_are_bad_requests(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    dm = (await alice.ok("send", to="bob", cmid="c", text="hi"))["conv"]
    for t, fields in (("group.add", {"members": ["carol"]}), ("group.remove", {"members": ["bob"]}),
                      ("group.leave", {})):
        reply = await alice.call(t, conv=dm, **fields)
        assert (reply["t"], reply["code"]) == ("error", "bad_request"), t
    assert (await alice.ok("history", conv=dm))["messages"][0]["text"] == "hi"


async def test_malformed_group_requests(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("group.create", {"members": "bob"}, "'members'"),
        ("group.create", {"members": [1]}, "'members[]'"),
        ("group.create", {"title": "x" * 101}, "'title'"),
        ("group.create", {"title": 7}, "'title'"),
        ("group.add", {"conv": "g:x"}, "'members'"),
        ("group.add", {"members": ["bob"]}, "'conv'"),
        ("group.remove", {"conv": "g:x", "members": "bob"}, "'members'"),
        ("group.leave", {"conv": ""}, "'conv'"),
    ]
    for t, fields, fragment in cases:
        reply = await alice.call(t, **fields)
        assert (reply["t"], reply["code"]) == ("error", "bad_request"), (t, fields)
        assert fragment in reply["message"], (t, reply)
    await alice.no_event("conv")


# -- concurrent membership changes ------------------------------------------
# Each pair of requests is sent from two connections without waiting, so the hub
# handles them interleaved; the outcome must be as if they ran one after the other.


async def test_concurrent_adds_respect_the_member_bound(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory(max_group_members=3)
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")
    conv = await _group(alice, "bob")
    by_alice = await alice.send_request("group.add", conv=conv, members=["carol"])
    by_bob = await bob.send_request("group.add", conv=conv, members=["dave"])
    replies = [await alice.reply(by_alice), await bob.reply(by_bob)]
    assert sorted(r.get("code", "ok") for r in replies) == ["ok", "too_large"], replies
    listed = (await dial(server.url, "alice")).welcome["convs"]
    assert len(listed[0]["members"]) == 3


async def test_concurrent_remove_and_leave_of_the_same_member(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    conv = await _group(alice, "bob", "carol")
    removing = await alice.send_request("group.remove", conv=conv, members=["bob"])
    leaving = await bob.send_request("group.leave", conv=conv)
    replies = [await alice.reply(removing), await bob.reply(leaving)]
    assert all(r["t"] == "ok" or r["code"] == "forbidden" for r in replies), replies
    assert (await bob.call("history", conv=conv))["code"] == "forbidden"
    await alice.ok("send", conv=conv, cmid="after", text="bob is gone")
    await carol.event("msg", cmid="after")
    await bob.no_event("msg")
    listed = (await connect("carol")).welcome["convs"]
    assert sorted(listed[0]["members"]) == ["alice", "carol"]


async def test_concurrent_leaves_of_the_owner_and_the_heir(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    conv = await _group(alice, "bob", "carol")
    first = await alice.send_request("group.leave", conv=conv)
    second = await bob.send_request("group.leave", conv=conv)
    assert [(await alice.reply(first))["t"], (await bob.reply(second))["t"]] == ["ok", "ok"]
    # Neither leaver keeps access, and the one left is the owner.
    for leaver in (alice, bob):
        assert (await leaver.call("history", conv=conv))["code"] == "forbidden"
    await carol.event("conv", conv=conv, members=["carol"], owner="carol")
    await carol.ok("group.add", conv=conv, members=["dave"])
    await carol.ok("group.remove", conv=conv, members=["dave"])
    listed = (await connect("carol")).welcome["convs"]
    assert listed[0]["members"] == ["carol"]


async def test_member_order_and_the_owners_heir_survive_a_restart(
    hub_factory: HubFactory, dial: Dial
) -> None:
    first = await hub_factory()
    alice = await dial(first.url, "alice")
    convs = [(await alice.ok("group.create", members=["zed", "bob", "mia"], title=t))["conv"]
             for t in ("left before the restart", "left after it")]
    announced = (await alice.event("conv", conv=convs[0]))["members"]
    listed = {c["conv"]: c["members"] for c in (await dial(first.url, "alice")).welcome["convs"]}
    assert announced == listed[convs[0]] == listed[convs[1]]

    zed = await dial(first.url, "zed")
    await alice.ok("group.leave", conv=convs[0])
    heir_before = (await zed.event("conv", conv=convs[0]))["owner"]
    await first.close()

    second = await hub_factory()
    alice, zed = await dial(second.url, "alice"), await dial(second.url, "zed")
    await alice.ok("group.leave", conv=convs[1])
    heir_after = (await zed.event("conv", conv=convs[1]))["owner"]
    # The three joined together; whichever the hub picks, it picks the same one.
    assert heir_before == heir_after


# -- who may be added: the DM policy and blocks --------------------------------
# Only users the adder may reach directly join a group; the others are listed as
# ``refused``, a block looking exactly like any other refusal.


async def test_under_friends_only_the_adders_friends_are_added(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, bob, carol, dave = [await join(u) for u in ("alice", "bob", "carol", "dave")]
    await befriend(alice, bob)
    await befriend(bob, dave)

    reply = await alice.ok("group.create", members=["bob", "carol"], title="crew")
    conv = reply["conv"]
    assert reply["refused"] == ["carol"]
    for client in (alice, bob):
        assert members_of(await client.event("conv", conv=conv)) == ["alice", "bob"]
    assert error_code(await carol.call("history", conv=conv)) == "forbidden"

    # Asking again changes nothing; bob may add his friend dave, whom alice does not know.
    assert (await alice.ok("group.add", conv=conv, members=["carol"]))["refused"] == ["carol"]
    assert (await bob.ok("group.add", conv=conv, members=["dave", "carol"]))["refused"] == ["carol"]
    assert members_of(await dave.event("conv", conv=conv)) == ["alice", "bob", "dave"]
    await settle(carol)
    assert queued_of(carol, "conv") == []

    # Once friends with alice, carol can be added by her.
    await befriend(alice, carol)
    assert (await alice.ok("group.add", conv=conv, members=["carol"]))["refused"] == []
    assert members_of(await carol.event("conv", conv=conv)) == ["alice", "bob", "carol", "dave"]


async def test_a_group_of_refused_members_is_created_with_the_creator_alone(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, bob = await join("alice"), await join("bob")
    reply = await alice.ok("group.create", members=["bob", "erin"], title="lonely")
    assert reply["refused"] == ["bob", "erin"]
    event = await alice.event("conv", conv=reply["conv"])
    assert (event["members"], event["owner"]) == (["alice"], "alice")
    await settle(bob)
    assert queued_of(bob, "conv") == []


async def test_a_block_either_way_refuses_like_the_policy_hook(hub_factory: HubFactory, dial: Dial) -> None:
    asked: list[tuple[str, str]] = []

    async def no_eve(sender: str, recipient: str) -> bool:
        asked.append((sender, recipient))
        return recipient != "eve"

    server = await hub_factory(dm_policy="friends", policy=no_eve)
    users = ("alice", "bob", "carol", "dave", "eve")
    alice, bob, carol, dave, eve = [await dial(server.url, u) for u in users]
    await bob.ok("block", user="alice")
    await alice.ok("block", user="carol")
    await quiet(alice, bob, carol)

    # The hook, not friendship, decides (nobody here is friends); a block refuses what it allows.
    reply = await alice.call("group.create", members=["bob", "carol", "dave", "eve"], title="t")
    assert {k: v for k, v in reply.items() if k != "conv"} == {
        "t": "ok", "id": reply["id"], "refused": ["bob", "carol", "eve"]}
    assert ("alice", "dave") in asked and ("alice", "eve") in asked
    assert members_of(await dave.event("conv", conv=reply["conv"])) == ["alice", "dave"]
    add = await dave.ok("group.add", conv=reply["conv"], members=["bob", "eve"])
    assert add["refused"] == ["eve"]  # dave is not blocked by bob
    await bob.event("conv", conv=reply["conv"])
    await settle(carol, eve)
    assert queued_of(carol, "conv") == queued_of(eve, "conv") == []


async def test_under_everyone_anyone_unblocked_is_added(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, carol = await join("alice"), await join("bob"), await join("carol")
    await carol.ok("block", user="alice")
    reply = await alice.ok("group.create", members=["bob", "carol", "bob"], title="open")
    assert reply["refused"] == ["carol"]
    assert members_of(await bob.event("conv", conv=reply["conv"])) == ["alice", "bob"]
    assert (await alice.ok("group.add", conv=reply["conv"], members=["dave"]))["refused"] == []
