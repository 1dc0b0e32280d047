"""Hub processes joined by a real Redis, on one real PostgreSQL schema: what crosses nodes.

Each test starts its nodes at once (so they also race to migrate the fresh
schema), each with ``--presence-ttl-s 1.5``, on a redis-server of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from clusterhelp import Device, Rig, until


def now_ms() -> int:
    return int(time.time() * 1000)


def holds(device: Device, conv: str, *seqs: int) -> bool:
    return all(seq in device.held.get(conv, {}) for seq in seqs)


async def test_a_dm_crosses_nodes_and_comes_back(rig: Rig) -> None:
    a, b = await rig.start(2)
    alice, bob = await rig.join(a, "alice"), await rig.join(b, "bob")
    bob_phone = await rig.join(a, "bob", "bob-phone")  # bob's other device, on alice's node

    sent = await alice.ok("send", to="bob", cmid="a-1", text="from node A")
    conv = sent["conv"]
    alice.own(conv, sent["seq"], "a-1")
    for device in (bob, bob_phone):
        created = await device.next_event("conv", conv=conv)
        assert (created["kind"], created["peer"], created["last_seq"]) == ("dm", "alice", 0)
    await until(lambda: holds(bob, conv, 1) and holds(bob_phone, conv, 1), 5, "bob has message 1")

    back = await bob.ok("send", conv=conv, cmid="b-1", text="and back from node B", reply={"seq": 1})
    assert back["seq"] == 2
    bob.own(conv, 2, "b-1")
    await until(lambda: holds(alice, conv, 2) and holds(bob_phone, conv, 2), 5, "message 2 everywhere")

    expected = {1: ("alice", "a-1"), 2: ("bob", "b-1")}
    for device in (alice, bob, bob_phone):
        assert device.holding(conv) == expected, device.label
        assert (device.repeats, device.history_calls, device.conflicts) == (0, 0, [])
    page = (await bob_phone.ok("history", conv=conv))["messages"]
    assert [(m["from"], m["text"], m.get("reply")) for m in page] == [
        ("alice", "from node A", None), ("bob", "and back from node B", {"seq": 1})]
    assert rig.errors() == {}


async def test_a_group_over_three_nodes_is_seen_in_one_order(rig: Rig) -> None:
    nodes = await rig.start(3)
    users = [f"m{i}" for i in range(6)]
    members = [await rig.join(nodes[i % 3], user) for i, user in enumerate(users)]
    tablet = await rig.join(nodes[1], "m0", "m0-tablet")  # m0 is on two nodes
    devices = [*members, tablet]
    conv = (await members[0].ok("group.create", members=users[1:], title="spread out"))["conv"]
    for device in devices:
        await device.next_event("conv", conv=conv)

    acked: dict[int, tuple[str, str]] = {}
    sender: dict[int, int] = {}  # seq -> index of the member that sent it
    origin: dict[int, int] = {}  # seq -> index of the node that stored it

    async def send(index: int, cmid: str) -> None:
        device = members[index]
        seq = (await device.ok("send", conv=conv, cmid=cmid, text=f"text {cmid}"))["seq"]
        assert seq not in acked
        acked[seq], sender[seq], origin[seq] = (device.user, cmid), index, index % 3
        device.own(conv, seq, cmid)

    # One at a time, from every node in turn (each send follows the last one's ack),
    # then all at once: six senders on three nodes, fifteen messages each.
    for n in range(30):
        await send(n % 6, f"one-{n}")

    async def burst(index: int) -> None:
        for k in range(15):
            await send(index, f"{users[index]}-burst-{k}")

    await asyncio.gather(*(burst(index) for index in range(6)))
    assert sorted(acked) == list(range(1, 121))
    await until(lambda: all(d.contig[conv] == 120 and not d.holes() for d in devices), 10,
                lambda: str({d.label: d.holes() for d in devices}))
    for device in devices:
        # Message 1..120 once each, the same message at each seq as the acks say; the
        # device releases them by contiguous seq: one order, the same for everyone.
        assert device.holding(conv) == acked, device.label
        assert device.conflicts == []
        own = sum(1 for index in sender.values() if members[index] is device)
        assert len(device.arrivals[conv]) - device.repeats + device.fetched + own == 120, device.label
        # What one node stored reaches every other node in the order it was stored.
        for node in range(3):
            from_node = [seq for seq in device.arrivals[conv] if origin[seq] == node]
            assert from_node == sorted(from_node), (device.label, node, from_node)
    late = sum(1 for d in devices for x, y in itertools.pairwise(d.arrivals[conv]) if y < x)
    print(f"group over 3 nodes: 120 messages x {len(devices)} devices; live arrivals before a lower seq "
          f"from another node: {late}; history calls {sum(d.history_calls for d in devices)}")
    assert rig.errors() == {}


async def test_presence_across_nodes_first_device_in_last_device_out(rig: Rig) -> None:
    a, b, c = await rig.start(3, dm_policy="friends")
    alice, bob = await rig.join(a, "alice"), await rig.join(b, "bob")

    refused = await alice.request("send", to="bob", cmid="early", text="hi")
    assert refused["code"] == "forbidden"  # friends policy, and not friends yet
    await bob.ok("friend.request", user="alice")
    assert (await alice.next_event("friend", user="bob"))["direction"] == "in"
    await alice.ok("friend.accept", user="bob")
    await bob.next_event("friend", user="alice", state="accepted")
    assert (await alice.next_event("presence", user="bob"))["online"] is True
    assert (await bob.next_event("presence", user="alice"))["online"] is True
    # Node A learnt of the friendship that node B stored: the DM is allowed now, across nodes.
    ok = await alice.ok("send", to="bob", cmid="friends-now", text="friends now")
    await until(lambda: holds(bob, ok["conv"], 1), 5, "bob got the DM")

    # bob's second device, on a third node: no event (already online), and its welcome sees alice.
    bob_c = await rig.join(c, "bob", "bob-c")
    assert bob_c.welcome["friends"] == [{"user": "alice", "online": True, "last_seen": None}]
    await alice.no_event("presence", user="bob")

    # bob leaves node B but is still on node C: still online, nothing said.
    await bob.drop()
    await alice.no_event("presence", 0.8, user="bob")
    assert (await alice.ok("presence", users=["bob"]))["users"] == [
        {"user": "bob", "online": True, "last_seen": None}]
    alice_c = await rig.join(c, "alice", "alice-c")
    assert alice_c.welcome["friends"] == [{"user": "bob", "online": True, "last_seen": None}]

    # The last device leaves: offline once, with when, on every device of every friend.
    before = now_ms()
    await bob_c.drop()
    for device in (alice, alice_c):
        gone = await device.next_event("presence", user="bob")
        assert gone["online"] is False and before <= gone["last_seen"] <= now_ms()
    await alice.no_event("presence", 0.3, user="bob")
    assert (await alice_c.ok("presence", users=["bob"]))["users"] == [
        {"user": "bob", "online": False, "last_seen": gone["last_seen"]}]

    # Back, on alice's node this time: online again, on both of alice's nodes.
    await rig.join(a, "bob", "bob-again")
    for device in (alice, alice_c):
        assert (await device.next_event("presence", user="bob"))["online"] is True

    # Two devices connecting at once on two nodes: one online event; leaving at once: one offline.
    carol = await rig.join(b, "carol")
    await carol.ok("friend.request", user="alice")
    await alice.next_event("friend", user="carol", state="requested")  # accept what you were asked
    await alice.ok("friend.accept", user="carol")
    await alice.next_event("presence", user="carol", online=True)
    await carol.drop()
    await alice.next_event("presence", user="carol", online=False)
    twins = [rig.device("carol", "carol-b"), rig.device("carol", "carol-c")]
    await asyncio.gather(twins[0].connect(b.url), twins[1].connect(c.url))
    await alice.next_event("presence", user="carol", online=True)
    await alice.no_event("presence", 0.8, user="carol")
    await asyncio.gather(*(twin.drop() for twin in twins))
    await alice.next_event("presence", user="carol", online=False)
    await alice.no_event("presence", 0.8, user="carol")
    assert rig.errors() == {}


async def test_typing_and_live_signals_cross_nodes(rig: Rig) -> None:
    a, b, c = await rig.start(3)
    ann, ben, cat = await rig.join(a, "ann"), await rig.join(b, "ben"), await rig.join(c, "cat")
    ann_c = await rig.join(c, "ann", "ann-c")
    group = (await ann.ok("group.create", members=["ben", "cat"], title="typists"))["conv"]
    dm = (await ann.ok("send", to="ben", cmid="dm-1", text="psst"))["conv"]
    created = time.monotonic()
    for device in (ben, cat, ann_c):
        await device.next_event("conv", conv=group)
    await until(lambda: holds(ben, dm, 1) and holds(ann_c, dm, 1), 5, "the DM's first message")

    async def typing_reaches(typer: Device, conv: str, others: list[Device], not_to: list[Device]) -> None:
        await typer.signal("typing", conv=conv)
        for device in others:
            event = await device.next_event("typing", conv=conv)
            assert event == {"t": "typing", "conv": conv, "user": typer.user}
        for device in not_to:  # never the typer's own devices, never non-members
            await device.no_event("typing", 0.3, conv=conv)

    # Just after the membership change the events travel by user channel ...
    await typing_reaches(ann, group, [ben, cat], [ann_c])
    await typing_reaches(ben, dm, [ann, ann_c], [cat])
    # ... and by the conversation's channel once FRESH_S (5 s) has passed.
    await asyncio.sleep(max(0.0, created + 5.3 - time.monotonic()))
    await typing_reaches(cat, group, [ann, ann_c, ben], [])
    await typing_reaches(ann_c, dm, [ben], [ann, cat])

    # The other live events of the conversation channel reach every node too.
    seq = (await ben.ok("send", conv=group, cmid="g-1", text="a message"))["seq"]
    await until(lambda: holds(cat, group, seq), 5, "cat has the message")  # read what you have
    await cat.ok("read", conv=group, seq=seq)
    await ben.ok("react", conv=group, seq=seq, emoji="👍", on=True)
    ts = (await ann.ok("watch", conv=group, video_id="v1", pos_ms=1200, playing=True))["ts"]
    await ben.ok("unsend", conv=group, seq=seq)
    for device in (ann, ann_c):
        assert (await device.next_event("read", conv=group))["user"] == "cat"
        assert (await device.next_event("reaction", conv=group))["emoji"] == "👍"
        assert await device.next_event("unsent", conv=group) == {"t": "unsent", "conv": group, "seq": seq}
    for device in (ben, cat, ann_c):
        watch = await device.next_event("watch", conv=group)
        assert (watch["by"], watch["pos_ms"], watch["ts"]) == ("ann", 1200, ts)
    assert rig.errors() == {}
