"""Read receipts and unread counts: a marker that only moves forward, and who hears of it."""

from __future__ import annotations

from typing import Any

from socialhelp import error_code, group, queued_of, quiet, settle, social_hub
from wire import Dial, HubFactory, RawClient


async def _send(client: RawClient, conv: str, *texts: str) -> None:
    for text in texts:
        await client.ok("send", conv=conv, cmid=text, text=text)


def listed(client: RawClient, conv: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in client.welcome["convs"] if c["conv"] == conv)
    return found


async def test_read_is_stored_and_told_to_members_and_the_readers_other_devices(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, bob_laptop, carol, dave = [await join(u) for u in ("alice", "bob", "bob", "carol", "dave")]
    conv = await group(alice, "bob", "carol")
    await _send(alice, conv, "one", "two", "three")
    await quiet(alice, bob, bob_laptop, carol, dave)

    reply = await bob.ok("read", conv=conv, seq=2)
    assert (set(reply), reply["read_seq"]) == ({"t", "id", "read_seq"}, 2)
    event = {"t": "read", "conv": conv, "user": "bob", "seq": 2}
    for device in (alice, bob_laptop, carol):
        assert await device.event("read") == event
    await settle(bob, dave)
    assert queued_of(bob, "read") == [] and dave.queued() == []  # not the reading connection

    later = listed(await join("bob"), conv)
    assert (later["read_seq"], later["unread"]) == (2, 1)


async def test_read_never_moves_backwards(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob = await join("alice"), await join("bob")
    conv = await group(alice, "bob")
    await _send(alice, conv, "1", "2", "3", "4")
    assert (await bob.ok("read", conv=conv, seq=3))["read_seq"] == 3
    await alice.event("read", seq=3)

    assert (await bob.ok("read", conv=conv, seq=1))["read_seq"] == 3
    assert (await bob.ok("read", conv=conv, seq=0))["read_seq"] == 3
    await settle(bob, alice)
    assert queued_of(alice, "read") == []  # nothing moved, nothing said
    assert (listed(await join("bob"), conv)["read_seq"], listed(await join("bob"), conv)["unread"]) == (3, 1)

    assert (await bob.ok("read", conv=conv, seq=4))["read_seq"] == 4
    assert (await alice.event("read"))["seq"] == 4
    assert listed(await join("bob"), conv)["unread"] == 0


async def test_read_is_refused_to_non_members_and_beyond_the_newest(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, mallory = await join("alice"), await join("bob"), await join("mallory")
    conv = await group(alice, "bob")
    await _send(alice, conv, "1", "2")
    await quiet(alice, bob)

    assert error_code(await mallory.call("read", conv=conv, seq=1)) == "forbidden"
    assert error_code(await mallory.call("read", conv="g:nowhere", seq=1)) == "forbidden"
    assert error_code(await bob.call("read", conv=conv, seq=3)) == "bad_request"
    assert error_code(await bob.call("read", conv=conv, seq=-1)) == "bad_request"
    assert error_code(await bob.call("read", conv=conv)) == "bad_request"
    await settle(mallory, bob, alice)
    assert queued_of(alice, "read") == []
    assert listed(await join("bob"), conv)["read_seq"] == 0


async def test_unread_counts_exclude_the_users_own_messages(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob, carol = await join("alice"), await join("bob"), await join("carol")
    conv = await group(alice, "bob", "carol")
    await _send(alice, conv, "a1", "a2")
    await _send(bob, conv, "b1")
    await _send(alice, conv, "a3")
    await _send(carol, conv, "c1", "c2")
    dm = (await bob.ok("send", to="alice", cmid="d1", text="psst"))["conv"]
    await _send(alice, dm, "d2")

    expected = {  # user: (group unread, dm unread or None)
        "alice": (3, 1), "bob": (5, 1), "carol": (4, None),
    }
    for user, (in_group, in_dm) in expected.items():
        welcome = await join(user)
        assert (listed(welcome, conv)["read_seq"], listed(welcome, conv)["unread"]) == (0, in_group)
        if in_dm is not None:
            assert listed(welcome, dm)["unread"] == in_dm

    # After reading up to seq 4, alice still has carol's two; bob's read leaves carol's too.
    await alice.ok("read", conv=conv, seq=4)
    await bob.ok("read", conv=conv, seq=5)
    assert listed(await join("alice"), conv)["unread"] == 2
    assert listed(await join("bob"), conv)["unread"] == 1
    await carol.ok("read", conv=conv, seq=6)
    carols = listed(await join("carol"), conv)
    assert (carols["read_seq"], carols["unread"]) == (6, 0)


async def test_read_markers_survive_a_restart(hub_factory: HubFactory, dial: Dial) -> None:
    first, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob = await join("alice"), await join("bob")
    conv = await group(alice, "bob")
    await _send(alice, conv, "1", "2", "3")
    await bob.ok("read", conv=conv, seq=2)
    await first.close()
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    bob = await join("bob")
    assert (listed(bob, conv)["read_seq"], listed(bob, conv)["unread"]) == (2, 1)
    assert (await bob.ok("read", conv=conv, seq=1))["read_seq"] == 2
