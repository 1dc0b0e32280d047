"""history: the newest page, paging back with before/limit, oldest first, reactions."""

from __future__ import annotations

import pytest
from wire import Connect, Dial, HubFactory, RawClient, history_all, video_card

from clipwire.server import ClipwireServer


async def _dm_with(alice: RawClient, count: int) -> str:
    conv = ""
    for n in range(1, count + 1):
        target = {"conv": conv} if conv else {"to": "bob"}
        conv = (await alice.ok("send", cmid=f"h{n}", text=f"text {n}", **target))["conv"]
    return conv


async def test_newest_page_oldest_first_with_reactions(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    conv = await _dm_with(alice, 60)
    page = (await bob.ok("history", conv=conv))["messages"]
    assert [m["seq"] for m in page] == list(range(11, 61))  # default limit 50, the newest
    first = page[0]
    assert first == {"conv": conv, "seq": 11, "from": "alice", "ts": first["ts"], "kind": "text",
                     "cmid": "h11", "text": "text 11", "reactions": []}
    assert [m["ts"] for m in page] == sorted(m["ts"] for m in page)
    assert all(m["reactions"] == [] for m in page)


async def test_paging_back_with_before_and_limit(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    conv = await _dm_with(alice, 25)
    newest = (await alice.ok("history", conv=conv, limit=10))["messages"]
    assert [m["seq"] for m in newest] == list(range(16, 26))
    older = (await alice.ok("history", conv=conv, before=16, limit=10))["messages"]
    assert [m["seq"] for m in older] == list(range(6, 16))  # before is exclusive
    oldest = (await alice.ok("history", conv=conv, before=6, limit=10))["messages"]
    assert [m["seq"] for m in oldest] == [1, 2, 3, 4, 5]
    assert (await alice.ok("history", conv=conv, before=1))["messages"] == []
    beyond = (await alice.ok("history", conv=conv, before=1000, limit=3))["messages"]
    assert [m["seq"] for m in beyond] == [23, 24, 25]
    one = (await alice.ok("history", conv=conv, limit=1))["messages"]
    assert [m["text"] for m in one] == ["text 25"]
    everything = await history_all(alice, conv, page=7)
    assert [m["seq"] for m in everything] == list(range(1, 26))
    most = (await alice.ok("history", conv=conv, limit=100))["messages"]
    assert len(most) == 25


async def test_history_of_an_empty_group(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    group = (await alice.ok("group.create", members=[], title="quiet"))["conv"]
    assert (await alice.ok("history", conv=group))["messages"] == []


async def test_history_keeps_video_cards_notes_and_replies(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    card = video_card("c", duration_ms=1_000, caption="cap")
    conv = (await alice.ok("send", to="bob", cmid="v", kind="video", video=card, text="note"))["conv"]
    await alice.ok("send", conv=conv, cmid="r", text="re", reply={"seq": 1, "at_ms": 500})
    video, reply = (await alice.ok("history", conv=conv))["messages"]
    assert (video["kind"], video["video"], video["text"]) == ("video", card, "note")
    assert (reply["kind"], reply["reply"], reply["text"]) == ("text", {"seq": 1, "at_ms": 500}, "re")


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"limit": 0}, "'limit'"),
        ({"limit": 101}, "'limit'"),
        ({"limit": "10"}, "'limit'"),
        ({"before": -1}, "'before'"),
        ({"before": "5"}, "'before'"),
        ({"conv": 5}, "'conv'"),
        ({"conv": None}, "'conv'"),
    ],
)
async def test_malformed_history_requests(
    hub: ClipwireServer, connect: Connect, fields: dict[str, object], fragment: str
) -> None:
    alice = await connect("alice")
    conv = await _dm_with(alice, 1)
    request = {k: v for k, v in {"conv": conv, **fields}.items() if v is not None}
    reply = await alice.call("history", **request)
    assert (reply["t"], reply["code"]) == ("error", "bad_request")
    assert fragment in reply["message"]
    assert len((await alice.ok("history", conv=conv))["messages"]) == 1


async def test_a_page_too_big_for_the_send_buffer_is_cut_not_fatal(
    hub_factory: HubFactory, dial: Dial
) -> None:
    # 20 messages of ~4 KB each do not fit half of a 32 KiB send buffer: the hub
    # returns the newest that fit, and paging on with before=first seq gets the rest.
    server = await hub_factory(send_buffer_bytes=32 * 1024)
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")
    body = "x" * 3990
    conv = (await alice.ok("send", to="bob", cmid="0", text=f"0{body}"))["conv"]
    for i in range(1, 20):
        await alice.ok("send", conv=conv, cmid=str(i), text=f"{i}{body}")
    page = (await bob.ok("history", conv=conv, limit=20))["messages"]
    assert 0 < len(page) < 20
    assert [m["seq"] for m in page] == list(range(21 - len(page), 21))
    everything = await history_all(bob, conv, page=20)
    assert [m["seq"] for m in everything] == list(range(1, 21))
    assert (await bob.ok("ping"))["server_time"] > 0  # still connected
