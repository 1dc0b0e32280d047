"""send: direct messages, groups, devices, video cards, replies."""

from __future__ import annotations

import time

import pytest
from wire import Connect, RawClient, video_card

from clipwire.server import ClipwireServer


def assert_bad(reply: dict[str, object], *fragments: str) -> None:
    assert reply["t"] == "error" and reply["code"] == "bad_request", reply
    for fragment in fragments:
        assert fragment in str(reply["message"]), reply


# -- direct messages --------------------------------------------------------


async def test_first_send_to_a_user_creates_the_dm_and_announces_it_to_both(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    before = int(time.time() * 1000)
    ok = await alice.ok("send", to="bob", cmid="c1", text="hi bob")
    conv = ok["conv"]
    assert conv.startswith("dm:") and ok["seq"] == 1
    assert before <= ok["ts"] <= int(time.time() * 1000)

    # Bob hears of the conversation before its first message.
    assert await bob.event() == {"t": "conv", "conv": conv, "kind": "dm", "peer": "alice", "last_seq": 0}
    msg = await bob.event()
    assert msg == {"t": "msg", "conv": conv, "seq": 1, "from": "alice", "ts": ok["ts"], "kind": "text",
                   "cmid": "c1", "text": "hi bob"}
    assert await alice.event("conv") == {"t": "conv", "conv": conv, "kind": "dm", "peer": "bob",
                                         "last_seq": 0}
    await alice.no_event("msg")  # the sending connection got ok instead

    # The same DM, whichever side writes next, and no second conv event.
    back = await bob.ok("send", to="alice", cmid="c1", text="hi alice")
    assert (back["conv"], back["seq"]) == (conv, 2)
    assert (await alice.event("msg"))["text"] == "hi alice"
    again = await alice.ok("send", to="bob", cmid="c2", text="again")
    assert (again["conv"], again["seq"]) == (conv, 3)
    await bob.event("msg", seq=3)
    await alice.no_event("conv")
    await bob.no_event("conv")


async def test_simultaneous_first_messages_make_one_dm(hub: ClipwireServer, connect: Connect) -> None:
    for n in range(5):
        alice, bob = await connect(f"alice{n}"), await connect(f"bob{n}")
        from_alice = await alice.send_request("send", to=f"bob{n}", cmid="a", text="hi bob")
        from_bob = await bob.send_request("send", to=f"alice{n}", cmid="b", text="hi alice")
        replies = [await alice.reply(from_alice), await bob.reply(from_bob)]
        assert [r["t"] for r in replies] == ["ok", "ok"], replies
        assert replies[0]["conv"] == replies[1]["conv"]
        assert sorted(r["seq"] for r in replies) == [1, 2]
        for client in (alice, bob):  # one conv event, then the other's message
            assert (await client.event())["t"] == "conv"
            assert (await client.event())["t"] == "msg"
            assert client.queued() == []


async def test_dm_to_an_offline_user_is_stored_and_listed(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    ok = await alice.ok("send", to="bob", cmid="c1", text="for later")
    bob = await connect("bob")
    assert [c["conv"] for c in bob.welcome["convs"]] == [ok["conv"]]
    history = await bob.ok("history", conv=ok["conv"])
    assert [m["text"] for m in history["messages"]] == ["for later"]


async def test_dm_to_yourself_is_refused(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    assert_bad(await alice.call("send", to="alice", cmid="c1", text="me"))


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"to": "bob", "conv": "g:x"}, "exactly one of 'to' and 'conv'"),
        ({}, "exactly one of 'to' and 'conv'"),
        ({"to": "bob", "text": ""}, "non-empty 'text'"),
        ({"to": "bob", "text": None}, "non-empty 'text'"),
        ({"to": "bob", "video": {"id": "v", "url": "https://x/v"}}, "no 'video'"),
        ({"to": "bob", "kind": "video", "text": "note"}, "'video' card"),
        ({"to": "bob", "kind": "audio"}, "'kind'"),
        ({"to": "bob", "cmid": None}, "'cmid'"),
        ({"to": "bob", "text": "x" * 4001}, "'text'"),
    ],
)
async def test_malformed_sends_are_refused_and_the_connection_kept(
    hub: ClipwireServer, connect: Connect, fields: dict[str, object], fragment: str
) -> None:
    alice = await connect("alice")
    request: dict[str, object] = {"cmid": "c1", "text": "hello", **fields}
    assert_bad(await alice.call("send", **{k: v for k, v in request.items() if v is not None}), fragment)
    ok = await alice.ok("send", to="bob", cmid="after", text="fine")
    assert ok["seq"] == 1  # nothing was stored by the refused sends


# -- groups and devices -----------------------------------------------------


async def test_send_to_a_group_reaches_every_member(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    outsider = await connect("dave")
    group = (await alice.ok("group.create", members=["bob", "carol"], title="Trio"))["conv"]
    ok = await bob.ok("send", conv=group, cmid="g1", text="hello all")
    assert (ok["conv"], ok["seq"]) == (group, 1)
    for member in (alice, carol):
        msg = await member.event("msg")
        assert (msg["conv"], msg["seq"], msg["from"], msg["text"], msg["cmid"]) == (
            group, 1, "bob", "hello all", "g1")
    await bob.no_event("msg")
    await outsider.no_event()


async def test_message_reaches_the_senders_other_devices_but_not_the_sending_one(
    hub: ClipwireServer, connect: Connect
) -> None:
    phone, laptop = await connect("alice", device="phone"), await connect("alice", device="laptop")
    bob_phone, bob_laptop = await connect("bob"), await connect("bob")
    ok = await phone.ok("send", to="bob", cmid="c1", text="from my phone")
    for device in (laptop, bob_phone, bob_laptop):
        msg = await device.event("msg")
        assert (msg["seq"], msg["from"], msg["text"]) == (1, "alice", "from my phone")
    await phone.no_event("msg")

    group = (await laptop.ok("group.create", members=["bob"], title="g"))["conv"]
    await laptop.ok("send", conv=group, cmid="g1", text="from my laptop")
    assert (await phone.event("msg", conv=group))["text"] == "from my laptop"
    await bob_phone.event("msg", conv=group)
    await laptop.no_event("msg")
    assert ok["conv"] != group


# -- video messages ---------------------------------------------------------


async def test_video_message_carries_its_card_and_optional_note(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    card = video_card("clip-1", thumb="https://img.example/1.jpg", caption="look", author="creator",
                      duration_ms=60_000, at_ms=5_000)
    ok = await alice.ok("send", to="bob", cmid="v1", kind="video", video=card, text="watch this")
    msg = await bob.event("msg")
    assert (msg["kind"], msg["video"], msg["text"], msg["seq"]) == ("video", card, "watch this", ok["seq"])

    bare = await alice.ok("send", conv=ok["conv"], cmid="v2", kind="video", video=video_card("clip-2"))
    msg = await bob.event("msg", seq=bare["seq"])
    assert msg["video"] == video_card("clip-2") and "text" not in msg

    stored = (await bob.ok("history", conv=ok["conv"]))["messages"]
    assert [m["video"] for m in stored] == [card, video_card("clip-2")]


@pytest.mark.parametrize(
    ("card", "fragment"),
    [
        ({"url": "https://x/v"}, "'video.id'"),
        ({"id": "v"}, "'video.url'"),
        ({"id": "v", "url": "javascript:alert(1)"}, "'video.url'"),
        ({"id": "v", "url": "https://x/v", "thumb": "ftp://x/t"}, "'video.thumb'"),
        ({"id": "v", "url": "https://x/v", "duration_ms": -1}, "'video.duration_ms'"),
        ({"id": "v", "url": "https://x/v", "duration_ms": 1000, "at_ms": 1001}, "'video.at_ms'"),
        ("not a card", "'video'"),
    ],
)
async def test_invalid_video_cards_are_refused(
    hub: ClipwireServer, connect: Connect, card: object, fragment: str
) -> None:
    alice = await connect("alice")
    assert_bad(await alice.call("send", to="bob", cmid="v", kind="video", video=card), fragment)


# -- replies ----------------------------------------------------------------


async def _conversation_with_text_and_video(alice: RawClient, bob: RawClient) -> str:
    conv = (await alice.ok("send", to="bob", cmid="t1", text="a text"))["conv"]
    await alice.ok("send", conv=conv, cmid="v1", kind="video",
                   video=video_card("long", duration_ms=60_000))
    await alice.ok("send", conv=conv, cmid="v2", kind="video", video=video_card("open-ended"))
    for seq in (1, 2, 3):
        await bob.event("msg", seq=seq)
    return conv


async def test_reply_must_name_a_message_of_the_conversation(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    conv = await _conversation_with_text_and_video(alice, bob)
    for seq in (0, 4, 1000):
        assert_bad(await bob.call("send", conv=conv, cmid=f"r{seq}", text="re", reply={"seq": seq}),
                   "'reply.seq'")
    assert_bad(await bob.call("send", conv=conv, cmid="r", text="re", reply={"seq": "1"}), "'reply.seq'")
    assert_bad(await bob.call("send", conv=conv, cmid="r", text="re", reply=3), "'reply'")

    ok = await bob.ok("send", conv=conv, cmid="r-ok", text="re: text", reply={"seq": 1})
    assert ok["seq"] == 4
    msg = await alice.event("msg")
    assert msg["reply"] == {"seq": 1}
    stored = (await alice.ok("history", conv=conv))["messages"]
    assert stored[-1]["reply"] == {"seq": 1}


async def test_reply_at_ms_only_on_a_video_share_and_within_its_duration(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    conv = await _conversation_with_text_and_video(alice, bob)

    assert_bad(await bob.call("send", conv=conv, cmid="r1", text="re", reply={"seq": 1, "at_ms": 10}),
               "'reply.at_ms'")
    assert_bad(await bob.call("send", conv=conv, cmid="r2", text="re", reply={"seq": 2, "at_ms": 60_001}),
               "'reply.at_ms'")

    within = await bob.ok("send", conv=conv, cmid="r3", text="at 30 s", reply={"seq": 2, "at_ms": 30_000})
    end = await bob.ok("send", conv=conv, cmid="r4", text="at the end", reply={"seq": 2, "at_ms": 60_000})
    # A card without duration_ms bounds nothing.
    free = await bob.ok("send", conv=conv, cmid="r5", text="later", reply={"seq": 3, "at_ms": 3_600_000})
    assert [within["seq"], end["seq"], free["seq"]] == [4, 5, 6]
    replies = [(await alice.event("msg", seq=s))["reply"] for s in (4, 5, 6)]
    assert replies == [{"seq": 2, "at_ms": 30_000}, {"seq": 2, "at_ms": 60_000},
                       {"seq": 3, "at_ms": 3_600_000}]


async def test_reply_in_a_group_to_a_shared_video(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    group = (await alice.ok("group.create", members=["bob"], title="films"))["conv"]
    share = await alice.ok("share", convs=[group], cmid="s1", video=video_card("f", duration_ms=9_000))
    seq = share["results"][0]["seq"]
    await bob.event("msg", seq=seq)
    ok = await bob.ok("send", conv=group, cmid="r1", text="this bit", reply={"seq": seq, "at_ms": 8_999})
    assert (await alice.event("msg", seq=ok["seq"]))["reply"] == {"seq": seq, "at_ms": 8_999}
