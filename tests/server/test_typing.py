"""Typing: a signal to the other members' devices, never answered, never stored, rate-limited."""

from __future__ import annotations

import time

from socialhelp import group, queued_of, quiet, settle, social_hub
from wire import Dial, HubFactory


async def test_typing_reaches_the_other_members_devices_only(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, alice_laptop = await join("alice"), await join("alice")
    bob, bob_laptop, carol, dave = [await join(u) for u in ("bob", "bob", "carol", "dave")]
    conv = await group(alice, "bob", "carol")
    await quiet(alice, alice_laptop, bob, bob_laptop, carol, dave)

    await alice.send_frame({"t": "typing", "conv": conv})
    for device in (bob, bob_laptop, carol):
        assert await device.event() == {"t": "typing", "conv": conv, "user": "alice"}
    await settle(alice, alice_laptop, dave)
    # No answer to a signal, and the typer's own devices are not told.
    for client in (alice, alice_laptop, dave):
        assert client.queued() == []


async def test_typing_in_a_dm(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob = await join("alice"), await join("bob")
    conv = (await alice.ok("send", to="bob", cmid="c1", text="hi"))["conv"]
    await bob.send_frame({"t": "typing", "conv": conv})
    assert await alice.event("typing") == {"t": "typing", "conv": conv, "user": "bob"}


async def test_typing_is_never_stored(hub_factory: HubFactory, dial: Dial) -> None:
    server, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob = await join("alice"), await join("bob")
    conv = await group(alice, "bob")
    await alice.ok("send", conv=conv, cmid="c1", text="only this is stored")
    await alice.send_frame({"t": "typing", "conv": conv})
    await bob.event("typing")
    assert [m["text"] for m in (await bob.ok("history", conv=conv))["messages"]] == ["only this is stored"]
    [listed] = (await join("bob", resume={conv: 0})).welcome["convs"]
    assert (listed["last_seq"], listed["unread"]) == (1, 1)
    await server.close()
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    bob = await join("bob", resume={conv: 0})
    assert (await bob.event("msg"))["seq"] == 1
    await settle(bob)
    assert queued_of(bob, "typing") == [] and queued_of(bob, "msg") == []


async def test_typing_is_rate_limited_per_connection_silently(hub_factory: HubFactory, dial: Dial) -> None:
    # A user's limit far above a connection's, so that only the connection's is seen here.
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone", rate_user_scale=10.0)
    alice, alice_laptop, bob = await join("alice"), await join("alice"), await join("bob")
    conv = await group(alice, "bob")
    await quiet(alice, alice_laptop, bob)

    for _ in range(10):
        await alice.send_frame({"t": "typing", "conv": conv})
    await settle(alice, bob)
    # Burst 3 at 1 per second: a fourth may sneak in if a second passed meanwhile.
    assert 3 <= len(queued_of(bob, "typing")) <= 4
    assert alice.queued() == []  # no errors, no answers: the excess is dropped
    assert (await alice.ok("send", conv=conv, cmid="c1", text="still here"))["seq"] == 1

    # The bucket is the connection's: another device of the same user has its own.
    await quiet(bob)
    for _ in range(10):
        await alice_laptop.send_frame({"t": "typing", "conv": conv})
    await settle(alice_laptop, bob)
    assert 3 <= len(queued_of(bob, "typing")) <= 4
    assert queued_of(alice_laptop, "error") == []


async def test_typing_is_rate_limited_per_user_across_devices_silently(
    hub_factory: HubFactory, dial: Dial
) -> None:
    # A user's devices together: twice a connection's rate and burst (1 a second, burst 3).
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone", typing_per_s=1.0, rate_user_scale=2.0)
    phone, laptop, tablet = [await join("alice") for _ in range(3)]
    bob = await join("bob")
    conv = await group(phone, "bob")
    await quiet(phone, laptop, tablet, bob)

    started = time.monotonic()
    for device in (phone, laptop, tablet):
        for _ in range(10):
            await device.send_frame({"t": "typing", "conv": conv})
        await settle(device)
    await settle(bob)
    elapsed = time.monotonic() - started
    got = len(queued_of(bob, "typing"))
    # Each connection alone would pass its burst of 3 (9 in all); the user's burst is 6,
    # refilled at 2 a second.
    assert 6 <= got <= 6 + int(2 * elapsed) + 1
    assert all(queued_of(device, "error") == [] for device in (phone, laptop, tablet))


async def test_typing_from_non_members_and_malformed_typing_is_dropped(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, mallory = await join("alice"), await join("bob"), await join("mallory")
    conv = await group(alice, "bob")
    await quiet(alice, bob, mallory)

    await mallory.send_frame({"t": "typing", "conv": conv})
    await mallory.send_frame({"t": "typing", "conv": "g:nowhere"})
    await mallory.send_frame({"t": "typing"})
    await mallory.send_frame({"t": "typing", "conv": 7})
    await settle(mallory, bob)
    assert mallory.queued() == [] and queued_of(bob, "typing") == []
    assert (await mallory.ok("ping"))["server_time"] > 0  # the connection is kept

    # A signal is never answered, even one that carries an id.
    await bob.send_frame({"t": "typing", "conv": conv, "id": 99})
    assert (await alice.event("typing"))["user"] == "bob"
    await settle(bob)
    assert 99 not in bob._replies and bob.queued() == []
