"""The SDK against a real hub: the welcome, requests, typed errors and the helpers."""

from __future__ import annotations

import socket
import time

import pytest
from sdkhelp import ProxyFactory, SdkFactory, messages, next_event, quiet
from wire import token

from clipwire.client import (
    BadRequest,
    ClientError,
    ConnectFailed,
    ConversationChanged,
    Forbidden,
    Message,
    Reply,
    RequestFailed,
    RequestTimeout,
    TooLarge,
    Unauthorized,
    VideoCard,
    connect,
)
from clipwire.protocol import ClipwireError, ErrorCode
from clipwire.server import ClipwireServer


async def test_connect_keeps_the_welcome(hub: ClipwireServer, sdk: SdkFactory) -> None:
    alice = await sdk(hub.url, "alice", device="laptop")
    assert alice.user == "alice" and alice.session and alice.connected
    assert alice.subprotocol == "clipwire.v1"
    assert alice.limits["max_frame_bytes"] == 64 * 1024 and alice.limits["resume_cap"] == 200
    assert alice.conversations == {} and alice.friend_requests == []
    assert abs(alice.server_time - time.time() * 1000) < 60_000
    sent = await alice.send_text("hello", to="bob")

    bob = await sdk(hub.url, "bob")
    conv = bob.conversations[sent.conv]
    assert (conv.kind, conv.peer, conv.name, conv.last_seq, conv.unread) == ("dm", "alice", "alice", 1, 1)


async def test_async_with_closes_the_client(hub: ClipwireServer) -> None:
    async with connect(hub.url, token("alice")) as client:
        assert await client.ping() > 0
    assert client.closed and not client.connected
    events = [event async for event in client]  # iteration simply ends
    assert events == []


async def test_request_returns_the_ok_result(hub: ClipwireServer, sdk: SdkFactory) -> None:
    alice = await sdk(hub.url, "alice")
    result = await alice.request("ping")
    assert set(result) == {"server_time"}
    conv = (await alice.request("send", to="bob", cmid="c1", text="raw"))["conv"]
    page = await alice.request("history", conv=conv)
    assert [m["text"] for m in page["messages"]] == ["raw"]


async def test_errors_are_typed_and_carry_the_wire_code(hub: ClipwireServer, sdk: SdkFactory) -> None:
    alice = await sdk(hub.url, "alice")
    with pytest.raises(BadRequest) as unknown:
        await alice.request("no.such.request")
    assert unknown.value.code == ErrorCode.BAD_REQUEST and unknown.value.t == "no.such.request"
    assert isinstance(unknown.value, RequestFailed | ClientError | ClipwireError)

    with pytest.raises(Forbidden) as forbidden:
        await alice.history("g:not-a-group")
    assert forbidden.value.code == "forbidden" and "not a member" in forbidden.value.message

    with pytest.raises(RequestFailed) as to_self:
        await alice.send_text("me", to="alice")
    assert to_self.value.code == ErrorCode.BAD_REQUEST

    with pytest.raises(BadRequest):
        await alice.history("g:x", limit=101)
    with pytest.raises(ValueError):
        await alice.send_text("both", to="bob", conv="dm:x")
    assert await alice.ping() > 0  # errors never cost the connection


async def test_too_large_frame_is_refused_before_sending(hub: ClipwireServer, sdk: SdkFactory) -> None:
    alice = await sdk(hub.url, "alice")
    with pytest.raises(TooLarge) as big:
        await alice.send_text("x" * 70_000, to="bob")
    assert big.value.code == ErrorCode.TOO_LARGE
    with pytest.raises(BadRequest):  # within the frame limit, over max_text_chars: the hub says so
        await alice.send_text("x" * 5000, to="bob")
    assert alice.connected and await alice.ping() > 0


async def test_request_timeout(hub: ClipwireServer, sdk: SdkFactory, proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(hub.port)
    alice = await sdk(proxy.url, "alice")
    proxy.blackhole = True  # the hub's answers never arrive
    with pytest.raises(RequestTimeout) as late:
        await alice.ping(timeout=0.3)
    assert isinstance(late.value, TimeoutError) and late.value.t == "ping"
    proxy.blackhole = False
    assert await alice.ping() > 0


async def test_bad_token_raises_unauthorized(hub: ClipwireServer) -> None:
    with pytest.raises(Unauthorized) as bad:
        await connect(hub.url, "not-a-jwt")
    assert bad.value.code == ErrorCode.UNAUTHORIZED and bad.value.t == "hello"
    with pytest.raises(Unauthorized):
        await connect(hub.url, token("alice", ttl_s=-60))


async def test_refused_token_is_replaced_by_the_provider(hub: ClipwireServer, sdk: SdkFactory) -> None:
    calls: list[str] = []

    async def fresh_token() -> str:
        calls.append("alice")
        return token("alice")

    alice = await sdk(hub.url, "alice", token="expired-or-garbage", token_provider=fresh_token)
    assert alice.user == "alice" and calls == ["alice"]
    only_provider = await sdk(hub.url, "alice", token_provider=fresh_token)
    assert only_provider.connected and calls == ["alice", "alice"]


async def test_unreachable_hub_raises_connect_failed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectFailed):
        await connect(f"ws://127.0.0.1:{port}/ws", token("alice"), connect_timeout=2)


async def test_send_text_and_events(hub: ClipwireServer, sdk: SdkFactory) -> None:
    alice = await sdk(hub.url, "alice")
    alice_phone = await sdk(hub.url, "alice", device="phone")
    bob = await sdk(hub.url, "bob")

    sent = await alice.send_text("hi bob", to="bob", cmid="greeting-1")
    assert isinstance(sent, Message)
    assert (sent.seq, sent.sender, sent.kind, sent.text, sent.cmid) == (1, "alice", "text", "hi bob",
                                                                       "greeting-1")
    new_dm = await next_event(bob, ConversationChanged)
    assert (new_dm.conv, new_dm.conversation.peer, new_dm.removed) == (sent.conv, "alice", False)
    got = await next_event(bob, Message)
    assert got == sent  # the same stored message: conv, seq, ts, cmid, text

    answer = await bob.send_text("hi alice", conv=sent.conv, reply=1)
    received = await next_event(alice, Message)
    assert (received.seq, received.sender, received.reply) == (2, "bob", Reply(1))
    assert received == answer

    # Alice's other device sees both; the sending connection got its own as the result.
    assert [m.text for m in await messages(alice_phone, 2)] == ["hi bob", "hi alice"]
    assert not [e for e in await quiet(alice, 0.3) if isinstance(e, Message)]
    assert alice.conversations[sent.conv].last_seq == 2


async def test_share_video(hub: ClipwireServer, sdk: SdkFactory) -> None:
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    carol = await sdk(hub.url, "carol")
    group = await alice.create_group(["bob", "carol"], "Watchers")
    card = VideoCard(id="vid-7", url="https://videos.example/v/7", thumb="https://videos.example/t/7.jpg",
                     caption="Sunset", author="dana", duration_ms=60_000, at_ms=1_500)

    results = await alice.share_video(card, to="bob", convs=[group, "g:nope"], text="look")
    assert [(r.target, r.target_kind, r.ok) for r in results] == [
        ("bob", "to", True), (group, "conv", True), ("g:nope", "conv", False)]
    assert results[2].error == "forbidden" and results[0].seq == 1 and results[1].seq == 1

    for client, convs in ((bob, {results[0].conv, group}), (carol, {group})):
        got = await messages(client, len(convs))
        assert {m.conv for m in got} == convs
        assert all(m.kind == "video" and m.video == card and m.text == "look" for m in got)
        assert len({m.cmid for m in got}) == 1  # one cmid for the whole share

    single = await alice.send_video({"id": "vid-8", "url": "https://videos.example/v/8"}, conv=group)
    assert (await next_event(carol, Message)).video == VideoCard("vid-8", "https://videos.example/v/8")
    assert single.seq == 2


async def test_history_pages(hub: ClipwireServer, sdk: SdkFactory) -> None:
    alice = await sdk(hub.url, "alice")
    conv = ""
    for n in range(1, 8):
        conv = (await alice.send_text(f"m{n}", to="bob")).conv
    newest = await alice.history(conv, limit=3)
    assert [(m.seq, m.text) for m in newest] == [(5, "m5"), (6, "m6"), (7, "m7")]
    assert all(isinstance(m, Message) and m.sender == "alice" and m.reactions == () for m in newest)
    assert [m.seq for m in await alice.history(conv, before=5, limit=3)] == [2, 3, 4]
    assert [m.seq for m in await alice.history(conv, before=2)] == [1]
    assert [m.seq for m in await alice.history(conv)] == list(range(1, 8))


async def test_groups(hub: ClipwireServer, sdk: SdkFactory) -> None:
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    carol = await sdk(hub.url, "carol")

    conv = await alice.create_group(["bob"], "Team")
    assert (alice.conversations[conv].title, alice.conversations[conv].owner) == ("Team", "alice")
    created = await next_event(bob, ConversationChanged)
    assert (created.conv, created.conversation.title, created.conversation.owner) == (conv, "Team", "alice")
    assert set(created.conversation.members) == {"alice", "bob"}
    assert (await next_event(alice, ConversationChanged)).conv == conv

    await bob.add_members(conv, ["carol"])
    everyone = {"alice", "bob", "carol"}
    added = await next_event(carol, ConversationChanged)
    assert set(added.conversation.members) == everyone
    await next_event(alice, ConversationChanged, where=lambda e: set(e.conversation.members) == everyone)
    assert set(alice.conversations[conv].members) == everyone

    with pytest.raises(Forbidden):
        await bob.remove_members(conv, ["carol"])  # only the owner removes
    await alice.remove_members(conv, ["carol"])
    removed = await next_event(carol, ConversationChanged)
    assert removed.removed and removed.conv == conv and conv not in carol.conversations
    with pytest.raises(Forbidden):
        await carol.send_text("still here?", conv=conv)

    await bob.leave_group(conv)
    left = await next_event(bob, ConversationChanged, where=lambda e: e.removed)
    assert left.conv == conv and conv not in bob.conversations
    await next_event(alice, ConversationChanged, where=lambda e: e.conversation.members == ("alice",))
    assert alice.conversations[conv].members == ("alice",)


async def test_refresh(hub: ClipwireServer, sdk: SdkFactory) -> None:
    alice = await sdk(hub.url, "alice")
    expires = await alice.refresh(token("alice", ttl_s=600))
    assert expires > time.time() * 1000 + 500_000
    with pytest.raises(Unauthorized):
        await alice.refresh(token("mallory"))
    assert await alice.ping() > 0
