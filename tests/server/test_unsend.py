"""Unsend: the sender takes a message back; a tombstone keeps its seq, the body leaves the store."""

from __future__ import annotations

import sqlite3
from typing import Any

from socialhelp import error_code, group, queued_of, quiet, settle, social_hub
from wire import Dial, HubFactory, RawClient, history_all, video_card


async def _three(join: Any) -> tuple[RawClient, RawClient, RawClient, RawClient, str, list[dict[str, Any]]]:
    """alice (two devices), bob and carol in a group; alice sent a text, a reply and a video share."""
    alice, alice_2, bob, carol = [await join(u) for u in ("alice", "alice", "bob", "carol")]
    conv = await group(alice, "bob", "carol")
    sent = [
        await alice.ok("send", conv=conv, cmid="t1", text="a secret"),
        await alice.ok("send", conv=conv, cmid="t2", text="replying", reply={"seq": 1}),
        await alice.ok("send", conv=conv, cmid="v1", kind="video",
                       video=video_card("clip", duration_ms=5_000), text="and a clip"),
    ]
    await quiet(alice, alice_2, bob, carol)
    return alice, alice_2, bob, carol, conv, sent


def tombstone(conv: str, seq: int, sent: dict[str, Any], kind: str, cmid: str) -> dict[str, Any]:
    return {"conv": conv, "seq": seq, "from": "alice", "ts": sent["ts"], "kind": kind, "cmid": cmid,
            "unsent": True}


async def test_unsend_tells_every_member_and_leaves_a_tombstone(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, alice_2, bob, carol, conv, sent = await _three(join)
    await bob.ok("react", conv=conv, seq=2, emoji="👍", on=True)

    assert set(await alice.ok("unsend", conv=conv, seq=2)) == {"t", "id"}
    for device in (alice_2, bob, carol):
        assert await device.event("unsent") == {"t": "unsent", "conv": conv, "seq": 2}
    await settle(alice)
    assert queued_of(alice, "unsent") == []

    stored = await history_all(carol, conv)
    assert [m["seq"] for m in stored] == [1, 2, 3]  # no hole
    assert stored[1] == {**tombstone(conv, 2, sent[1], "text", "t2"), "reactions": []}
    assert stored[0]["text"] == "a secret" and stored[2]["text"] == "and a clip"

    # The next message still takes the next seq.
    assert (await bob.ok("send", conv=conv, cmid="b1", text="what did you say?"))["seq"] == 4


async def test_resume_shows_the_tombstone(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, _, _, _, conv, sent = await _three(join)
    await alice.ok("unsend", conv=conv, seq=3)
    dave = await join("bob", resume={conv: 1})
    assert (await dave.event("msg", seq=2))["text"] == "replying"
    resumed = await dave.event("msg", seq=3)
    assert resumed == {"t": "msg", **tombstone(conv, 3, sent[2], "video", "v1")}


async def test_the_body_is_gone_from_the_store(hub_factory: HubFactory, dial: Dial) -> None:
    server, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, _, bob, _, conv, _ = await _three(join)
    for seq in (1, 2, 3):
        await bob.ok("react", conv=conv, seq=seq, emoji="🔥", on=True, **({"at_ms": 100} if seq == 3 else {}))
    await alice.ok("unsend", conv=conv, seq=2)
    await alice.ok("unsend", conv=conv, seq=3)
    await server.close()

    with sqlite3.connect(server.config.db) as db:
        rows = db.execute("SELECT seq, sender, cmid, kind, text, video, reply, unsent FROM messages "
                          "WHERE conv = ? ORDER BY seq", (conv,)).fetchall()
        reactions = db.execute("SELECT seq FROM reactions WHERE conv = ? ORDER BY seq", (conv,)).fetchall()
        dump = "\n".join(db.iterdump())
    db.close()
    assert rows == [
        (1, "alice", "t1", "text", "a secret", None, None, 0),
        (2, "alice", "t2", "text", None, None, None, 1),
        (3, "alice", "v1", "video", None, None, None, 1),
    ]
    assert reactions == [(1,)]
    # Not hidden somewhere else either.
    assert "replying" not in dump and "and a clip" not in dump and "videos.example/clip" not in dump


async def test_only_the_sender_unsends(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, alice_2, bob, carol, conv, _ = await _three(join)
    mallory = await join("mallory")
    reply = await bob.call("unsend", conv=conv, seq=1)
    assert (error_code(reply), reply["message"]) == ("forbidden", "only the sender can unsend a message")
    assert error_code(await mallory.call("unsend", conv=conv, seq=1)) == "forbidden"
    assert error_code(await mallory.call("unsend", conv="g:nowhere", seq=1)) == "forbidden"
    for seq in (0, 4, 1000):
        assert error_code(await alice.call("unsend", conv=conv, seq=seq)) == "not_found"
    await settle(bob, mallory, alice, carol, alice_2)
    assert queued_of(carol, "unsent") == [] and queued_of(alice_2, "unsent") == []
    assert (await history_all(carol, conv))[0]["text"] == "a secret"
    # alice's other device may take it back.
    await alice_2.ok("unsend", conv=conv, seq=1)
    assert (await alice.event("unsent"))["seq"] == 1


async def test_unsend_twice_is_a_quiet_ok_and_an_unsent_message_takes_no_reactions(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, _, bob, carol, conv, _ = await _three(join)
    await alice.ok("unsend", conv=conv, seq=1)
    await carol.event("unsent")
    await alice.ok("unsend", conv=conv, seq=1)
    await settle(alice, carol)
    assert queued_of(carol, "unsent") == []

    for fields in ({"on": True}, {"on": False}):
        reply = await bob.call("react", conv=conv, seq=1, emoji="👍", **fields)
        assert (error_code(reply), reply["message"]) == ("not_found", "no such message in this conversation")
    await settle(bob, carol)
    assert queued_of(carol, "reaction") == []
    # Replying to a tombstone still names a place in the order.
    assert (await bob.ok("send", conv=conv, cmid="b1", text="gone?", reply={"seq": 1}))["seq"] == 4


async def test_unsend_in_a_dm(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob = await join("alice"), await join("bob")
    dm = (await alice.ok("send", to="bob", cmid="c1", text="oops"))["conv"]
    await alice.ok("unsend", conv=dm, seq=1)
    assert await bob.event("unsent") == {"t": "unsent", "conv": dm, "seq": 1}
    [stored] = (await bob.ok("history", conv=dm))["messages"]
    assert stored["unsent"] is True and "text" not in stored
    assert error_code(await bob.call("unsend", conv=dm, seq=1)) == "forbidden"
