"""Bad input: what is answered with an error, what closes, and that nobody else notices.

Every closing case also checks that an already-connected pair of users keeps
talking and that messages stored before are still in history (``bystanders``).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import msgpack
import pytest
from wire import SECRET, Bystanders, Connect, Dial, HubFactory, RawClient, token

from clipwire.protocol import encode
from clipwire.server import ClipwireServer


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


# Frames that cannot be read as a Clipwire frame: the hub closes with 4003.
UNREADABLE: dict[str, bytes | str] = {
    "text frame": '{"t": "ping", "id": 1}',
    "not msgpack": b"\xc1",
    "truncated msgpack": b"\x82\xa1t\xa4send",
    "empty frame": b"",
    "msgpack array": msgpack.packb(["t", "ping"]),
    "msgpack integer": msgpack.packb(7),
    "msgpack string": msgpack.packb("hello"),
    "missing t": encode({"id": 1, "v": 1}),
    "integer t": encode({"t": 5, "id": 1}),
    "nil t": encode({"t": None, "id": 1}),
    "trailing bytes": encode({"t": "ping", "id": 1}) + b"\x00",
    "two frames in one": encode({"t": "ping", "id": 1}) * 2,
    "too deep": encode({"t": "send", "id": 1, "cmid": "c", "text": nested(20)}),
    "bin value": encode({"t": "ping", "id": 1, "blob": b"\x00\x01"}),
    "ext value": msgpack.packb({"t": "ping", "id": 1, "x": msgpack.ExtType(1, b"x")}),
    "integer map key": msgpack.packb({"t": "ping", 1: 2}),
}


async def _hub_closes(client: RawClient, code: int) -> str:
    closed_with, reason = await client.closed()
    assert closed_with == code, (closed_with, reason)
    return reason


# -- frames that close the connection ---------------------------------------


@pytest.mark.parametrize("frame", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_unreadable_first_frame_closes_4003(
    hub: ClipwireServer, bystanders: Bystanders, frame: bytes | str
) -> None:
    client = await RawClient.open(hub.url)
    await client.send_raw(frame)
    assert await _hub_closes(client, 4003)
    assert client.queued() == []  # closed without an answer
    await bystanders.still_served()


@pytest.mark.parametrize("frame", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_unreadable_frame_after_hello_closes_4003_and_loses_nothing_sent_before(
    hub: ClipwireServer, connect: Connect, bystanders: Bystanders, frame: bytes | str
) -> None:
    victim = await connect("victim")
    # Pipelined right before the bad frame: it must still be stored and delivered.
    await victim.send_request("send", to="bystander-b", cmid="last-words", text="last words")
    await victim.send_raw(frame)
    assert await _hub_closes(victim, 4003)
    msg = await bystanders.receiver.event("msg", cmid="last-words")
    assert (msg["from"], msg["text"]) == ("victim", "last words")
    stored = (await bystanders.receiver.ok("history", conv=msg["conv"]))["messages"]
    assert [m["text"] for m in stored] == ["last words"]
    await bystanders.still_served()


async def test_text_frame_reason_says_binary(
    hub: ClipwireServer, connect: Connect, bystanders: Bystanders
) -> None:
    alice = await connect("alice")
    await alice.send_raw("hello")
    assert "binary" in await _hub_closes(alice, 4003)
    await bystanders.still_served()


async def test_oversized_frame_closes_1009(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory(max_frame_bytes=1024)
    bystanders = await Bystanders.start(lambda user: dial(server.url, user))

    fits = await dial(server.url, "alice")
    frame = encode({"t": "send", "id": 5, "to": "bob", "cmid": "big", "text": "x" * 950})
    assert len(frame) <= 1024
    await fits.send_raw(frame)
    assert (await fits.reply(5))["t"] == "ok"

    too_big = await dial(server.url, "alice")
    await too_big.send_frame({"t": "send", "id": 2, "to": "bob", "cmid": "huge", "text": "x" * 2000})
    await _hub_closes(too_big, 1009)
    before_hello = await dial(server.url)
    await before_hello.send_raw(b"\x00" * 2048)
    await _hub_closes(before_hello, 1009)

    await bystanders.still_served()
    history = (await fits.ok("history", conv=(await fits.ok("send", to="bob", cmid="n", text="n"))["conv"]))
    assert [m["cmid"] for m in history["messages"]] == ["big", "n"]  # the huge one was never stored


async def test_no_hello_in_time_closes_4002(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory(hello_timeout_s=0.3)
    bystanders = await Bystanders.start(lambda user: dial(server.url, user))
    silent = await dial(server.url)
    assert await _hub_closes(silent, 4002) == "no hello in time"
    await bystanders.still_served()


@pytest.mark.parametrize(
    "frame",
    [
        {"t": "send", "id": 1, "to": "bob", "cmid": "c", "text": "hi"},
        {"t": "ping", "id": 1},
        {"t": "ping"},
        {"t": "no.such.request", "id": 1},
        {"t": "typing", "conv": "g:x"},
    ],
    ids=["send", "ping", "ping signal", "unknown type", "typing"],
)
async def test_first_frame_other_than_hello_closes_4003(
    hub: ClipwireServer, bystanders: Bystanders, frame: dict[str, Any]
) -> None:
    client = await RawClient.open(hub.url)
    await client.send_frame(frame)
    assert "hello" in await _hub_closes(client, 4003)
    assert client.queued() == []
    await bystanders.still_served()


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"v": 2}, "version"),
        ({"v": None}, "'v'"),
        ({"v": "1"}, "'v'"),
        ({"device": 5}, "'device'"),
        ({"device": "x" * 129}, "'device'"),
        ({"resume": ["g:1", 3]}, "'resume'"),
        ({"resume": {"g:1": -1}}, "resume[g:1]"),
        ({"resume": {"g:1": "3"}}, "resume[g:1]"),
    ],
)
async def test_invalid_hello_is_answered_bad_request_then_closed_4003(
    hub: ClipwireServer, bystanders: Bystanders, fields: dict[str, Any], fragment: str
) -> None:
    client = await RawClient.open(hub.url)
    hello = {"t": "hello", "id": 9, "v": 1, "token": token("victim"), **fields}
    await client.send_frame({k: v for k, v in hello.items() if v is not None})
    reply = await client.reply(9)
    assert (reply["t"], reply["code"]) == ("error", "bad_request")
    assert fragment in reply["message"], reply
    await _hub_closes(client, 4003)
    await bystanders.still_served()


@pytest.mark.parametrize("bad_token", [None, "", 12345])
async def test_hello_without_a_usable_token_is_unauthorized_then_closed_4001(
    hub: ClipwireServer, bystanders: Bystanders, bad_token: Any
) -> None:
    client = await RawClient.open(hub.url)
    hello = {"t": "hello", "id": 9, "v": 1, "token": bad_token}
    await client.send_frame({k: v for k, v in hello.items() if v is not None})
    reply = await client.reply(9)
    assert (reply["t"], reply["code"]) == ("error", "unauthorized")
    assert "'token'" in reply["message"], reply
    await _hub_closes(client, 4001)
    await bystanders.still_served()


async def test_hello_without_id_is_answered_without_id_then_closed(
    hub: ClipwireServer, bystanders: Bystanders
) -> None:
    client = await RawClient.open(hub.url)
    await client.send_frame({"t": "hello", "v": 1, "token": token("victim")})
    error = await client.event("error")
    assert "id" not in error and error["code"] == "bad_request"
    await _hub_closes(client, 4003)
    await bystanders.still_served()


def _unsigned(claims: dict[str, Any]) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def _bad_tokens() -> dict[str, str]:
    exp = int(time.time()) + 3600
    return {
        "not a jwt": "not-a-jwt",
        "three junk parts": "aaa.bbb.ccc",
        "expired": token("victim", exp=int(time.time()) - 60),
        "wrongly signed": jwt.encode({"sub": "victim", "exp": exp}, "another-secret-that-is-long-enough!!",
                                     algorithm="HS256"),
        "alg none": _unsigned({"sub": "victim", "exp": exp}),
        "HS512 with the right secret": jwt.encode({"sub": "victim", "exp": exp}, SECRET * 2,
                                                  algorithm="HS512"),
        "no exp": jwt.encode({"sub": "victim"}, SECRET, algorithm="HS256"),
        "no sub": jwt.encode({"exp": exp}, SECRET, algorithm="HS256"),
        "empty sub": jwt.encode({"sub": "", "exp": exp}, SECRET, algorithm="HS256"),
        # Ids that look blank, or like another user's: each would be a user of its own.
        "blank sub": token(" "),
        "hangul filler sub": token("\u3164"),
        "braille blank sub": token("\u2800"),
        "leading space sub": token(" victim"),
        "trailing space sub": token("victim "),
        "tampered payload": _tampered(token("victim")),
    }


def _tampered(good: str) -> str:
    head, _, sig = good.split(".")
    body = base64.urlsafe_b64encode(json.dumps({"sub": "admin", "exp": 2**40}).encode()).rstrip(b"=")
    return f"{head}.{body.decode()}.{sig}"


BAD_TOKENS = _bad_tokens()


@pytest.mark.parametrize("bad", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_token_is_answered_unauthorized_then_closed_4001(
    hub: ClipwireServer, bystanders: Bystanders, bad: str
) -> None:
    client = await RawClient.open(hub.url)
    reply = await client.call("hello", v=1, token=bad)
    assert (reply["t"], reply["code"]) == ("error", "unauthorized")
    assert reply["id"] == 1
    await _hub_closes(client, 4001)
    await bystanders.still_served()


# -- requests that are refused but keep the connection ----------------------


async def test_unknown_request_type_is_a_bad_request_not_a_close(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice = await connect("alice")
    reply = await alice.call("teleport", to="bob")
    assert (reply["t"], reply["code"]) == ("error", "bad_request")
    assert "teleport" in reply["message"]
    reply = await alice.call("")
    assert (reply["t"], reply["code"]) == ("error", "bad_request")
    assert (await alice.ok("send", to="bob", cmid="c", text="still here"))["seq"] == 1


SEND = {"to": "bob", "cmid": "c1", "text": "hi"}
WRONG_TYPES: list[tuple[str, dict[str, Any], str]] = [
    ("send", {**SEND, "cmid": 17}, "'cmid'"),
    ("send", {**SEND, "cmid": "x" * 129}, "'cmid'"),
    ("send", {**SEND, "to": 17}, "'to'"),
    ("send", {**SEND, "to": "bo\nb"}, "'to'"),
    ("send", {"conv": ["g:1"], "cmid": "c", "text": "hi"}, "'conv'"),
    ("send", {**SEND, "text": 17}, "'text'"),
    ("send", {**SEND, "kind": 1}, "'kind'"),
    ("send", {**SEND, "reply": {"seq": -1}}, "'reply.seq'"),
    ("send", {**SEND, "reply": {"seq": 1, "at_ms": "soon"}}, "'reply.at_ms'"),
    ("send", {**SEND, "reply": {"seq": True}}, "'reply.seq'"),
    ("share", {"cmid": "s", "to": "bob", "video": {"id": "v", "url": "https://x/v"}}, "'to'"),
    ("share", {"cmid": "s", "to": ["bob"], "video": "https://x/v"}, "'video'"),
    ("share", {"cmid": "s", "to": ["bob"], "video": {"id": 5, "url": "https://x/v"}}, "'video.id'"),
    ("history", {"conv": "g:1", "limit": "10"}, "'limit'"),
    ("history", {"conv": "g:1", "before": 1.5}, "'before'"),
    ("group.create", {"members": "bob"}, "'members'"),
    ("group.add", {"conv": 5, "members": ["bob"]}, "'conv'"),
    ("group.remove", {"conv": "g:1", "members": [None]}, "'members[]'"),
    ("refresh", {"token": 5}, "'token'"),
    ("react", {"conv": "g:1", "seq": 1, "emoji": "", "on": True}, "'emoji'"),
    ("watch", {"conv": "g:1", "video_id": "v", "pos_ms": 1, "playing": "yes"}, "'playing'"),
]


@pytest.mark.parametrize(("t", "fields", "field_name"), WRONG_TYPES,
                         ids=[f"{t}-{name}" for t, _, name in WRONG_TYPES])
async def test_wrong_field_types_are_bad_requests_naming_the_field(
    hub: ClipwireServer, connect: Connect, t: str, fields: dict[str, Any], field_name: str
) -> None:
    alice = await connect("alice")
    reply = await alice.call(t, **fields)
    assert (reply["t"], reply["code"]) == ("error", "bad_request"), reply
    assert field_name in reply["message"], reply
    assert (await alice.ok("send", to="bob", cmid="after", text="still here"))["seq"] == 1


@pytest.mark.parametrize("rid", [None, "7", -1, True, 1.5, 2**64 - 1], ids=repr)
async def test_request_without_a_valid_id_is_answered_without_id(
    hub: ClipwireServer, connect: Connect, rid: object
) -> None:
    alice = await connect("alice")
    frame: dict[str, Any] = {"t": "send", "to": "bob", "cmid": "c", "text": "hi"}
    if rid is not None:
        frame["id"] = rid
    await alice.send_frame(frame)
    error = await alice.event("error")
    assert "id" not in error and error["code"] == "bad_request"
    assert "'id'" in error["message"]
    # Nothing was stored, and the connection is still served.
    ok = await alice.ok("send", to="bob", cmid="c", text="now with an id")
    assert ok["seq"] == 1
    assert [m["text"] for m in (await alice.ok("history", conv=ok["conv"]))["messages"]] == ["now with an id"]


async def test_typing_signals_are_never_answered(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    conv = (await alice.ok("send", to="bob", cmid="c", text="hi"))["conv"]
    await alice.event("conv")
    await bob.event("conv")
    await bob.event("msg")
    for frame in ({"t": "typing", "conv": conv}, {"t": "typing"}, {"t": "typing", "conv": 5},
                  {"t": "typing", "id": 3, "conv": conv}):
        await alice.send_frame(frame)
    await alice.no_event()
    # The two well-formed signals reach bob; the broken ones vanish without a word.
    for _ in range(2):
        assert await bob.event("typing") == {"t": "typing", "conv": conv, "user": "alice"}
    await bob.no_event()
    assert (await alice.ok("ping"))["t"] == "ok"
