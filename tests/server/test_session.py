"""Session: hello and welcome, resume with its cap and gap, refresh, token expiry, ping."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from wire import Connect, Dial, HubFactory, RawClient, token

from clipwire.protocol import decode
from clipwire.server import ClipwireServer

LIMIT_KEYS = {
    "max_frame_bytes", "max_depth", "max_str_len", "max_bin_len", "max_array_len", "max_map_len",
    "max_id_chars", "max_text_chars", "max_title_chars", "max_url_chars", "max_emoji_chars",
    "max_share_targets", "max_history_limit", "max_group_members", "resume_cap", "resume_total_max",
    "hello_timeout_ms",
}
RATE_KINDS = ("send", "history", "friend", "block", "presence", "react", "read", "watch", "group")
RATE_KEYS = {f"rate_{kind}_{what}" for kind in RATE_KINDS for what in ("per_s", "burst")}


def now_ms() -> int:
    return int(time.time() * 1000)


async def send_texts(client: RawClient, count: int, *, first: int = 1, **target: Any) -> str:
    """Send ``count`` numbered texts (``m<first>``...) one after another; returns the conv."""
    conv = ""
    for n in range(first, first + count):
        conv = (await client.ok("send", cmid=f"{client.welcome['user']}-{n}", text=f"m{n}", **target))["conv"]
        target = {"conv": conv}
    return conv


# -- hello and welcome ------------------------------------------------------


async def test_welcome_names_user_session_time_limits(hub: ClipwireServer, connect: Connect) -> None:
    before = now_ms()
    alice = await connect("alice")
    after = now_ms()
    welcome = alice.welcome
    assert welcome["t"] == "ok" and welcome["id"] == 1
    assert welcome["user"] == "alice"
    assert isinstance(welcome["session"], str) and welcome["session"]
    assert before <= welcome["server_time"] <= after
    assert welcome["convs"] == [] and welcome["requests"] == []
    limits = welcome["limits"]
    assert set(limits) == LIMIT_KEYS | RATE_KEYS
    assert all(isinstance(limits[k], int) for k in LIMIT_KEYS)
    assert all(isinstance(limits[k], float) and limits[k] > 0 for k in RATE_KEYS)
    assert limits["rate_send_burst"] == 2 * limits["rate_send_per_s"]
    assert limits["rate_friend_burst"] >= 5  # several "Add" taps at once
    assert limits["max_frame_bytes"] == 64 * 1024
    assert limits["max_depth"] == 8
    assert limits["max_text_chars"] == 4000
    assert limits["max_history_limit"] == 100
    assert limits["max_share_targets"] == 100
    assert limits["max_group_members"] == 1000
    assert limits["resume_cap"] == 200
    assert limits["hello_timeout_ms"] == 10_000
    assert limits["max_id_chars"] == 128


async def test_welcome_limits_follow_the_hub_settings(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory(max_frame_bytes=4096, max_group_members=3, max_share_targets=7,
                               resume_cap=5, hello_timeout_s=2.5, max_text_chars=100)
    limits = (await dial(server.url, "alice")).welcome["limits"]
    assert (limits["max_frame_bytes"], limits["max_group_members"], limits["max_share_targets"],
            limits["resume_cap"], limits["hello_timeout_ms"], limits["max_text_chars"]) == (
        4096, 3, 7, 5, 2500, 100)


async def test_each_connection_is_its_own_session(hub: ClipwireServer, connect: Connect) -> None:
    phone = await connect("alice", device="phone")
    laptop = await connect("alice", device="laptop")
    plain = await connect("alice")  # device is optional
    sessions = {c.welcome["session"] for c in (phone, laptop, plain)}
    assert len(sessions) == 3
    assert {c.welcome["user"] for c in (phone, laptop, plain)} == {"alice"}


async def test_welcome_lists_conversations_with_seqs_unread_peer_and_members(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    dm = await send_texts(bob, 3, to="alice")
    await alice.ok("send", conv=dm, cmid="a1", text="hi bob")
    group = (await alice.ok("group.create", members=["bob", "carol"], title="Trip"))["conv"]
    await send_texts(carol, 2, conv=group)

    again = await connect("alice")
    convs = again.welcome["convs"]
    # Newest activity first: the DM (last_seq 4) before the group (last_seq 2).
    assert [c["conv"] for c in convs] == [dm, group]
    assert convs[0] == {"conv": dm, "kind": "dm", "peer": "bob", "last_seq": 4, "read_seq": 0,
                        "unread": 3}
    listed_group = dict(convs[1])
    assert sorted(listed_group.pop("members")) == ["alice", "bob", "carol"]
    assert listed_group.pop("owner") == "alice"
    assert listed_group == {"conv": group, "kind": "group", "title": "Trip", "last_seq": 2,
                            "read_seq": 0, "unread": 2, "member_count": 3}

    # unread counts only messages the user did not send.
    bob_convs = {c["conv"]: c for c in (await connect("bob")).welcome["convs"]}
    assert (bob_convs[dm]["peer"], bob_convs[dm]["unread"]) == ("alice", 1)
    assert bob_convs[group]["unread"] == 2
    carol_convs = {c["conv"]: c for c in (await connect("carol")).welcome["convs"]}
    assert set(carol_convs) == {group} and carol_convs[group]["unread"] == 0
    assert (await connect("dave")).welcome["convs"] == []


async def test_second_hello_on_a_live_connection_is_refused(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    reply = await alice.call("hello", v=1, token=token("alice"))
    assert (reply["t"], reply["code"]) == ("error", "bad_request")
    assert (await alice.ok("ping"))["server_time"] > 0


# -- resume -----------------------------------------------------------------


async def test_resume_pushes_missed_messages_oldest_first_right_after_welcome(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice = await connect("alice")
    dm = await send_texts(alice, 5, to="bob")

    bob = await RawClient.open(hub.url)
    await bob.send_frame({"t": "hello", "id": 7, "v": 1, "token": token("bob"), "resume": {dm: 2}})
    frames = [decode(await asyncio.wait_for(bob.ws.recv(), 5)) for _ in range(4)]
    assert frames[0]["t"] == "ok" and frames[0]["id"] == 7
    assert [(f["t"], f["seq"], f["text"]) for f in frames[1:]] == [
        ("msg", 3, "m3"), ("msg", 4, "m4"), ("msg", 5, "m5")]
    assert all(f["conv"] == dm and f["from"] == "alice" for f in frames[1:])
    await bob.no_event()
    await bob.close()


async def test_resume_covers_several_conversations_and_skips_those_up_to_date(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, carol = await connect("alice"), await connect("carol")
    dm = await send_texts(alice, 3, to="bob")
    group = (await carol.ok("group.create", members=["bob"], title="g"))["conv"]
    await send_texts(carol, 2, conv=group)

    bob = await connect("bob", resume={dm: 3, group: 0})
    got = [await bob.event("msg") for _ in range(2)]
    assert [(m["conv"], m["seq"]) for m in got] == [(group, 1), (group, 2)]
    await bob.no_event("msg")

    ahead = await connect("bob", resume={dm: 99})  # ahead of the hub: nothing to push
    await ahead.no_event("msg")


async def test_resume_cap_then_gap_event_and_history_fills_it(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory(resume_cap=5)
    alice = await dial(server.url, "alice")
    dm = await send_texts(alice, 12, to="bob")

    bob = await dial(server.url, "bob", resume={dm: 1})
    pushed = [await bob.event("msg", conv=dm) for _ in range(5)]
    assert [m["seq"] for m in pushed] == [2, 3, 4, 5, 6]
    gap = await bob.event("gap")
    assert gap == {"t": "gap", "conv": dm, "from_seq": 7, "to_seq": 12}
    await bob.no_event()
    page = await bob.ok("history", conv=dm, before=gap["to_seq"] + 1, limit=100)
    assert [m["seq"] for m in page["messages"]] == list(range(1, 13))

    # Exactly the cap left: no gap.
    exact = await dial(server.url, "bob", resume={dm: 7})
    assert [(await exact.event("msg"))["seq"] for _ in range(5)] == [8, 9, 10, 11, 12]
    await exact.no_event()


async def test_resume_total_budget_leaves_later_conversations_a_gap(
    hub_factory: HubFactory, dial: Dial
) -> None:
    server = await hub_factory(resume_cap=5, resume_total_max=7)
    bob = await dial(server.url, "bob")
    convs = [await send_texts(bob, 6, to=peer) for peer in ("p1", "p2", "p3")]

    again = await dial(server.url, "bob", resume=dict.fromkeys(convs, 0))
    first = [await again.event("msg", conv=convs[0]) for _ in range(5)]
    assert [m["seq"] for m in first] == [1, 2, 3, 4, 5]
    assert await again.event("gap", conv=convs[0]) == {"t": "gap", "conv": convs[0], "from_seq": 6,
                                                       "to_seq": 6}
    second = [await again.event("msg", conv=convs[1]) for _ in range(2)]
    assert [m["seq"] for m in second] == [1, 2]
    assert (await again.event("gap", conv=convs[1]))["from_seq"] == 3
    assert await again.event("gap", conv=convs[2]) == {"t": "gap", "conv": convs[2], "from_seq": 1,
                                                       "to_seq": 6}
    await again.no_event()


async def test_resume_backlog_of_big_messages_fits_the_send_buffer(
    hub_factory: HubFactory, dial: Dial
) -> None:
    # 20 messages of ~16 KB against a 128 KiB send buffer: pushing the whole backlog
    # would close the client with 4009 on every resume, so part of it becomes a gap.
    server = await hub_factory(send_buffer_bytes=128 * 1024)
    alice = await dial(server.url, "alice")
    big = "\N{GRINNING FACE}" * 4000
    dm = (await alice.ok("send", to="bob", cmid="b1", text=big))["conv"]
    for n in range(2, 21):
        await alice.ok("send", conv=dm, cmid=f"b{n}", text=big)

    bob = await dial(server.url, "bob", resume={dm: 0})
    gap = await bob.event("gap", conv=dm)
    pushed = [m["seq"] for m in bob.queued() if m["t"] == "msg"]
    assert pushed and pushed == list(range(1, len(pushed) + 1))
    assert gap == {"t": "gap", "conv": dm, "from_seq": len(pushed) + 1, "to_seq": 20}
    before, fetched = 21, []
    while before > gap["from_seq"]:  # small pages: each reply fits the buffer too
        page = (await bob.ok("history", conv=dm, before=before, limit=3))["messages"]
        fetched[:0] = [m["seq"] for m in page]
        before = page[0]["seq"]
    assert fetched[0] <= gap["from_seq"] and fetched[-1] == 20
    assert (await bob.ok("ping"))["t"] == "ok"


async def test_resume_ignores_conversations_the_user_is_not_in(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    dm = await send_texts(alice, 3, to="bob")
    group = (await alice.ok("group.create", members=["bob"], title="no carol"))["conv"]
    await send_texts(alice, 2, conv=group, first=10)

    carol = await connect("carol", resume={dm: 0, group: 0, "g:no-such-group": 0, "dm:nope": 5})
    assert carol.welcome["convs"] == []
    await carol.no_event()
    assert (await carol.ok("ping"))["server_time"] > 0


async def test_live_messages_during_resume_never_overtake_the_backlog(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice = await connect("alice")
    dm = await send_texts(alice, 30, to="bob")

    bob = await RawClient.open(hub.url)
    await bob.send_frame({"t": "hello", "id": 1, "v": 1, "token": token("bob"), "resume": {dm: 0}})
    later = [await alice.send_request("send", conv=dm, cmid=f"late-{n}", text=f"late {n}")
             for n in range(10)]
    for rid in later:
        assert (await alice.reply(rid))["t"] == "ok"

    first = decode(await asyncio.wait_for(bob.ws.recv(), 5))
    assert first["t"] == "ok" and first["id"] == 1
    seen: list[int] = []
    while len(set(seen)) < 40:
        frame = decode(await asyncio.wait_for(bob.ws.recv(), 5))
        assert frame["t"] == "msg" and frame["conv"] == dm
        if frame["seq"] not in seen:  # a live copy may repeat a backlog message
            seen.append(frame["seq"])
    assert seen == list(range(1, 41))
    await bob.close()


# -- refresh and token expiry -----------------------------------------------


async def test_refresh_with_a_token_for_the_same_user(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    exp = int(time.time()) + 3600
    reply = await alice.ok("refresh", token=token("alice", exp=exp))
    # The hub reports when it will close the session: exp plus its leeway (5 s).
    assert reply["expires_at"] == (exp + 5) * 1000


async def test_refresh_refusals_keep_the_connection(hub: ClipwireServer, connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    other_user = await alice.call("refresh", token=token("mallory"))
    assert (other_user["t"], other_user["code"]) == ("error", "unauthorized")
    garbage = await alice.call("refresh", token="not.a.token")
    assert (garbage["t"], garbage["code"]) == ("error", "unauthorized")
    missing = await alice.call("refresh")
    assert (missing["t"], missing["code"]) == ("error", "bad_request")

    ok = await alice.ok("send", to="bob", cmid="still-alice", text="still me")
    msg = await bob.event("msg", seq=ok["seq"])
    assert msg["from"] == "alice"


async def test_token_expiry_closes_4001_unless_refreshed(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory(jwt_leeway_s=0)
    exp = int(time.time()) + 2  # expires 1 to 2 s from now
    expiring = await RawClient.open(server.url)
    await expiring.hello(token("alice", exp=exp))
    refreshed = await RawClient.open(server.url)
    await refreshed.hello(token("bob", exp=exp))
    assert (await refreshed.ok("refresh", token=token("bob", ttl_s=3600)))["expires_at"] > exp * 1000
    assert (await expiring.ok("ping"))["server_time"] > 0

    code, reason = await expiring.closed(timeout=5)
    assert (code, reason) == (4001, "token expired")
    assert time.time() >= exp - 0.25  # not before the token's exp
    # The refreshed session outlives the first token's exp.
    await refreshed.no_event(wait_s=0.5)
    assert (await refreshed.ok("ping"))["server_time"] >= exp * 1000
    await refreshed.close()


# -- ping -------------------------------------------------------------------


async def test_ping_with_id_answers_server_time_and_without_id_is_silent(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice = await connect("alice")
    before = now_ms()
    reply = await alice.ok("ping")
    assert before <= reply["server_time"] <= now_ms()
    await alice.send_frame({"t": "ping"})
    await alice.no_event()
    assert (await alice.ok("ping"))["t"] == "ok"
