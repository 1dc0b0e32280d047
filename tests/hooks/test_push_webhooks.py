"""message.created webhooks: the push a recipient with no connected device needs, after a grace."""

from __future__ import annotations

import asyncio
import time

from conftest import Hooked
from hookhelp import Backend, until
from wire import Dial

SETTLE_S = 0.5  # longer than any grace here plus the release slack: a push due would be in


async def test_push_only_for_offline_members_and_only_after_the_grace(
        hooked: Hooked, dial: Dial, backend: Backend) -> None:
    server = await hooked(webhook_grace_s=0.4)
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")
    group = (await alice.ok("group.create", members=["bob", "carol"], title="trip"))["conv"]

    sent_at = time.monotonic()
    ok = await alice.ok("send", conv=group, cmid="m1", text="who is in?")
    await bob.event("msg", conv=group, seq=ok["seq"])  # bob is connected: delivered, no push
    (push,) = await backend.wait_events("message.created")
    assert time.monotonic() - sent_at >= 0.4 - 0.1  # the grace, less the release slack

    assert push["data"]["user"] == "carol"
    (entry,) = push["data"]["convs"]
    assert (entry["conv"], entry["count"], entry["first_seq"], entry["last_seq"]) == (group, 1, 1, 1)
    message = entry["message"]
    assert (message["from"], message["text"], message["seq"], message["cmid"]) == (
        "alice", "who is in?", 1, "m1")
    assert "members" not in message
    assert set(push) == {"id", "type", "ts", "data"}

    await asyncio.sleep(SETTLE_S)
    assert len(backend.events("message.created")) == 1  # none for bob, none for alice herself
    assert all(d.verified for d in backend.deliveries)


async def test_pushes_collapse_per_conversation_and_batch_per_recipient(
        hooked: Hooked, dial: Dial, backend: Backend) -> None:
    server = await hooked(webhook_grace_s=0.4)
    alice = await dial(server.url, "alice")
    group = (await alice.ok("group.create", members=["carol"], title="g"))["conv"]
    for n in (1, 2, 3):
        await alice.ok("send", conv=group, cmid=f"g{n}", text=f"group {n}")
    dm = (await alice.ok("send", to="carol", cmid="d1", text="dm 1"))["conv"]
    await alice.ok("send", conv=dm, cmid="d2", text="dm 2")

    (push,) = await backend.wait_events("message.created", user="carol")
    convs = {entry["conv"]: entry for entry in push["data"]["convs"]}
    assert set(convs) == {group, dm}
    assert (convs[group]["count"], convs[group]["first_seq"], convs[group]["last_seq"]) == (3, 1, 3)
    assert convs[group]["message"]["text"] == "group 3"  # the latest one
    assert (convs[dm]["count"], convs[dm]["message"]["text"]) == (2, "dm 2")
    await asyncio.sleep(SETTLE_S)
    assert len(backend.events("message.created")) == 1

    # After the push, a new message starts a new grace and a new push.
    await alice.ok("send", conv=dm, cmid="d3", text="dm 3")
    pushes = await backend.wait_events("message.created", count=2)
    (entry,) = pushes[1]["data"]["convs"]
    assert (entry["conv"], entry["count"], entry["first_seq"], entry["message"]["text"]) == (
        dm, 1, 3, "dm 3")


async def test_connecting_within_the_grace_cancels_the_push(
        hooked: Hooked, dial: Dial, backend: Backend) -> None:
    server = await hooked(webhook_grace_s=0.5)
    alice = await dial(server.url, "alice")
    conv = (await alice.ok("send", to="carol", cmid="m1", text="you there?"))["conv"]
    # She connects, gets it, and is gone again, all within the grace: it was delivered.
    carol = await dial(server.url, "carol", resume={conv: 0})
    assert (await carol.event("msg", conv=conv))["text"] == "you there?"
    await carol.close()
    await until(lambda: "carol" not in server.hub.sessions)
    await asyncio.sleep(0.5 + SETTLE_S)
    assert backend.events("message.created") == []

    await alice.ok("send", conv=conv, cmid="m2", text="gone again")
    (push,) = await backend.wait_events("message.created")
    assert [(e["count"], e["first_seq"]) for e in push["data"]["convs"]] == [(1, 2)]


async def test_reading_within_the_grace_cancels_what_was_read(
        hooked: Hooked, dial: Dial, backend: Backend) -> None:
    # A reader on another node is known here only by the hub's message.read event.
    server = await hooked(webhook_grace_s=0.5)
    alice = await dial(server.url, "alice")
    dm = (await alice.ok("send", to="carol", cmid="d1", text="one"))["conv"]
    await alice.ok("send", conv=dm, cmid="d2", text="two")
    group = (await alice.ok("group.create", members=["carol"], title="g"))["conv"]
    await alice.ok("send", conv=group, cmid="g1", text="group one")
    server.hub.emit("message.read", {"conv": dm, "user": "carol", "seq": 1})
    server.hub.emit("message.read", {"conv": group, "user": "carol", "seq": 1})

    (push,) = await backend.wait_events("message.created")
    assert [(e["conv"], e["count"], e["first_seq"]) for e in push["data"]["convs"]] == [(dm, 1, 2)]
    await asyncio.sleep(SETTLE_S)
    assert len(backend.events("message.created")) == 1


async def test_no_push_to_a_member_who_blocks_the_sender(
        hooked: Hooked, dial: Dial, backend: Backend) -> None:
    server = await hooked()
    alice, carol = await dial(server.url, "alice"), await dial(server.url, "carol")
    group = (await alice.ok("group.create", members=["carol", "dave"], title="g"))["conv"]
    await carol.ok("block", user="alice")
    await carol.close()
    await until(lambda: "carol" not in server.hub.sessions)

    await alice.ok("send", conv=group, cmid="m1", text="hello all")
    (push,) = await backend.wait_events("message.created")
    assert push["data"]["user"] == "dave"
    await asyncio.sleep(SETTLE_S)
    assert len(backend.events("message.created")) == 1


async def test_shutdown_sends_pushes_still_in_their_grace(
        hooked: Hooked, dial: Dial, backend: Backend) -> None:
    server = await hooked(webhook_grace_s=30.0)
    alice = await dial(server.url, "alice")
    await alice.ok("send", to="carol", cmid="m1", text="before the restart")
    await asyncio.sleep(0.1)
    assert backend.events("message.created") == []

    started = time.monotonic()
    await server.close()
    assert time.monotonic() - started < 3.0
    (push,) = backend.events("message.created")
    assert push["data"]["user"] == "carol"
    assert server.webhooks is not None and server.webhooks.stats.dropped == 0
