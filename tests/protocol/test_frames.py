"""Pure tests of ``clipwire.protocol.frames``: decoded frames into typed requests.

Every refusal is a :class:`RequestError` with code ``bad_request`` and a message
that names the offending field in quotes (``'conv'``, ``'to[]'``, ``'video.url'``).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from clipwire.protocol import (
    DEFAULT_LIMITS,
    ErrorCode,
    Limits,
    Reply,
    RequestError,
    VideoCard,
    parse_request,
    parse_video_card,
)
from clipwire.protocol.frames import (
    _PARSERS,
    MAX_UINT,
    PROTOCOL_VERSION,
    SIGNALS,
    Block,
    FriendAccept,
    FriendRemove,
    FriendRequest,
    GroupAdd,
    GroupCreate,
    GroupLeave,
    GroupRemove,
    Hello,
    History,
    Ping,
    PresenceQuery,
    React,
    Read,
    Refresh,
    Send,
    Share,
    Typing,
    Unblock,
    Unsend,
    Watch,
    parse_hello,
    request_id,
)

CARD: dict[str, Any] = {"id": "vid-1", "url": "https://videos.example/v/1"}
FULL_CARD: dict[str, Any] = {
    "id": "vid-2",
    "url": "http://videos.example/v/2?x=1#t",
    "thumb": "https://img.example/2.jpg",
    "caption": "a caption ✓",
    "author": "alice",
    "duration_ms": 60_000,
    "at_ms": 1_500,
}

# One minimal valid frame per request type; the invalid cases below mutate these.
BASE: dict[str, dict[str, Any]] = {
    "send": {"t": "send", "id": 1, "conv": "c1", "cmid": "m1", "text": "hi"},
    "share": {"t": "share", "id": 1, "cmid": "m1", "video": CARD, "to": ["bob"]},
    "history": {"t": "history", "id": 1, "conv": "c1"},
    "read": {"t": "read", "id": 1, "conv": "c1", "seq": 3},
    "react": {"t": "react", "id": 1, "conv": "c1", "seq": 3, "emoji": "👍", "on": True},
    "unsend": {"t": "unsend", "id": 1, "conv": "c1", "seq": 3},
    "group.create": {"t": "group.create", "id": 1, "members": ["a", "b"], "title": "T"},
    "group.add": {"t": "group.add", "id": 1, "conv": "g1", "members": ["c"]},
    "group.remove": {"t": "group.remove", "id": 1, "conv": "g1", "members": ["c"]},
    "group.leave": {"t": "group.leave", "id": 1, "conv": "g1"},
    "friend.request": {"t": "friend.request", "id": 1, "user": "bob"},
    "friend.accept": {"t": "friend.accept", "id": 1, "user": "bob"},
    "friend.remove": {"t": "friend.remove", "id": 1, "user": "bob"},
    "block": {"t": "block", "id": 1, "user": "bob"},
    "unblock": {"t": "unblock", "id": 1, "user": "bob"},
    "presence": {"t": "presence", "id": 1, "users": ["bob"]},
    "watch": {"t": "watch", "id": 1, "conv": "c1", "video_id": "v1", "pos_ms": 0,
              "playing": False},
    "refresh": {"t": "refresh", "id": 1, "token": "new.jwt.token"},
    "ping": {"t": "ping", "id": 1},
    "typing": {"t": "typing", "conv": "c1"},
    "hello": {"t": "hello", "id": 1, "v": 1, "token": "a.jwt.token"},
}

NEEDS_ID = sorted(set(_PARSERS) - SIGNALS - {"ping"})


def frame(t: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of ``BASE[t]`` with ``changes`` applied; ``...`` deletes a field."""
    out = copy.deepcopy(BASE[t])
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def refuse(data: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse_request(data, limits)
    err = info.value
    assert err.code is ErrorCode.BAD_REQUEST
    assert str(err) == f"bad_request: {err.message}"
    return err


def refuse_naming(data: dict[str, Any], field: str, limits: Limits = DEFAULT_LIMITS) -> None:
    err = refuse(data, limits)
    assert f"'{field}'" in err.message, err.message


# --------------------------------------------------------------------------- valid requests

VALID: list[Any] = [
    pytest.param(
        {"t": "send", "id": 1, "to": "bob", "cmid": "m1", "text": "hello"},
        Send(1, "m1", "bob", None, "text", "hello", None, None),
        id="send-dm",
    ),
    pytest.param(
        {"t": "send", "id": 2, "conv": "c1", "cmid": "m2", "kind": "text", "text": "yo",
         "reply": {"seq": 4}},
        Send(2, "m2", None, "c1", "text", "yo", None, Reply(4)),
        id="send-conv-reply",
    ),
    pytest.param(
        {"t": "send", "id": 3, "conv": "c1", "cmid": "m3", "kind": "video", "video": CARD,
         "reply": {"seq": 1, "at_ms": 250}},
        Send(3, "m3", None, "c1", "video", None, VideoCard("vid-1", CARD["url"]), Reply(1, 250)),
        id="send-video",
    ),
    pytest.param(
        {"t": "send", "id": 4, "to": "bob", "cmid": "m4", "kind": "video", "video": FULL_CARD,
         "text": "look"},
        Send(4, "m4", "bob", None, "video", "look", VideoCard(**FULL_CARD), None),
        id="send-video-with-text",
    ),
    pytest.param(
        {"t": "share", "id": 5, "cmid": "s1", "video": CARD, "to": ["bob", "carol"],
         "convs": ["g1"], "text": "watch this"},
        Share(5, "s1", VideoCard("vid-1", CARD["url"]), ("bob", "carol"), ("g1",), "watch this"),
        id="share",
    ),
    pytest.param(
        {"t": "share", "id": 6, "cmid": "s2", "video": CARD, "convs": ["g1"]},
        Share(6, "s2", VideoCard("vid-1", CARD["url"]), (), ("g1",), None),
        id="share-convs-only",
    ),
    pytest.param(
        {"t": "history", "id": 7, "conv": "c1"},
        History(7, "c1", None, 50),
        id="history-default",
    ),
    pytest.param(
        {"t": "history", "id": 8, "conv": "c1", "before": 120, "limit": 100},
        History(8, "c1", 120, 100),
        id="history-page",
    ),
    pytest.param({"t": "read", "id": 9, "conv": "c1", "seq": 12}, Read(9, "c1", 12), id="read"),
    pytest.param(
        {"t": "react", "id": 10, "conv": "c1", "seq": 2, "emoji": "🎉", "on": True},
        React(10, "c1", 2, "🎉", True, None),
        id="react",
    ),
    pytest.param(
        {"t": "react", "id": 11, "conv": "c1", "seq": 2, "emoji": "❤️", "on": False,
         "at_ms": 900},
        React(11, "c1", 2, "❤️", False, 900),
        id="react-off-at-moment",
    ),
    pytest.param({"t": "unsend", "id": 12, "conv": "c1", "seq": 3}, Unsend(12, "c1", 3),
                 id="unsend"),
    pytest.param(
        {"t": "group.create", "id": 13, "members": ["a", "b"], "title": "Film club"},
        GroupCreate(13, ("a", "b"), "Film club"),
        id="group-create",
    ),
    pytest.param(
        {"t": "group.create", "id": 14},
        GroupCreate(14, (), ""),
        id="group-create-bare",
    ),
    pytest.param(
        {"t": "group.add", "id": 15, "conv": "g1", "members": ["c", "d"]},
        GroupAdd(15, "g1", ("c", "d")),
        id="group-add",
    ),
    pytest.param(
        {"t": "group.remove", "id": 16, "conv": "g1", "members": ["c"]},
        GroupRemove(16, "g1", ("c",)),
        id="group-remove",
    ),
    pytest.param({"t": "group.leave", "id": 17, "conv": "g1"}, GroupLeave(17, "g1"),
                 id="group-leave"),
    pytest.param({"t": "friend.request", "id": 18, "user": "bob"}, FriendRequest(18, "bob"),
                 id="friend-request"),
    pytest.param({"t": "friend.accept", "id": 19, "user": "bob"}, FriendAccept(19, "bob"),
                 id="friend-accept"),
    pytest.param({"t": "friend.remove", "id": 20, "user": "bob"}, FriendRemove(20, "bob"),
                 id="friend-remove"),
    pytest.param({"t": "block", "id": 21, "user": "eve"}, Block(21, "eve"), id="block"),
    pytest.param({"t": "unblock", "id": 22, "user": "eve"}, Unblock(22, "eve"), id="unblock"),
    pytest.param(
        {"t": "presence", "id": 23, "users": ["bob", "carol"]},
        PresenceQuery(23, ("bob", "carol")),
        id="presence",
    ),
    pytest.param({"t": "presence", "id": 24, "users": []}, PresenceQuery(24, ()),
                 id="presence-empty"),
    pytest.param(
        {"t": "watch", "id": 25, "conv": "c1", "video_id": "v9", "pos_ms": 4_200,
         "playing": True},
        Watch(25, "c1", "v9", 4_200, True),
        id="watch",
    ),
    pytest.param({"t": "refresh", "id": 26, "token": "x.y.z"}, Refresh(26, "x.y.z"),
                 id="refresh"),
    pytest.param({"t": "ping", "id": 27}, Ping(27), id="ping-with-id"),
    pytest.param({"t": "ping"}, Ping(None), id="ping-without-id"),
    pytest.param({"t": "ping", "id": None}, Ping(None), id="ping-nil-id"),
    pytest.param({"t": "ping", "id": 0}, Ping(0), id="ping-id-zero"),
    pytest.param({"t": "typing", "conv": "c1"}, Typing("c1"), id="typing"),
    pytest.param({"t": "typing", "id": 5, "conv": "c1"}, Typing("c1"), id="typing-with-id"),
    pytest.param(
        {"t": "hello", "id": 1, "v": 1, "token": "a.b.c"},
        Hello(1, 1, "a.b.c", None, {}),
        id="hello",
    ),
    pytest.param(
        {"t": "hello", "id": 1, "v": 1, "token": "a.b.c", "device": "phone-1",
         "resume": {"c1": 0, "c2": 17}},
        Hello(1, 1, "a.b.c", "phone-1", {"c1": 0, "c2": 17}),
        id="hello-resume",
    ),
]


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_valid_request_parses_to_typed_value(data: dict[str, Any], expected: Any) -> None:
    before = copy.deepcopy(data)
    result = parse_request(data)
    assert type(result) is type(expected)
    assert result == expected
    assert data == before  # parsing never mutates the frame


def test_valid_cases_cover_every_request_type() -> None:
    covered = {param.values[0]["t"] for param in VALID}
    assert covered == set(_PARSERS)
    assert set(BASE) == set(_PARSERS)


@pytest.mark.parametrize("t", sorted(BASE))
def test_base_frames_are_valid(t: str) -> None:
    result = parse_request(frame(t))
    assert dataclasses.is_dataclass(result)


def test_requests_are_frozen() -> None:
    result = parse_request(frame("read"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(result, "seq", 4)  # noqa: B010


def test_extra_fields_are_ignored() -> None:
    assert parse_request(frame("read", extra="x", nested={"a": 1})) == Read(1, "c1", 3)


def test_protocol_version() -> None:
    assert PROTOCOL_VERSION == 1
    assert SIGNALS == frozenset({"typing"})


# --------------------------------------------------------------------------- the request id

BAD_UINTS: list[Any] = [-1, -(2**63), 2**63, 2**64 - 1, True, False, 1.0, 1.5, "1", [1], {"a": 1}]


@pytest.mark.parametrize("t", NEEDS_ID)
def test_request_without_id_is_bad_request(t: str) -> None:
    refuse_naming(frame(t, id=...), "id")
    refuse_naming(frame(t, id=None), "id")


@pytest.mark.parametrize("bad", BAD_UINTS, ids=repr)
@pytest.mark.parametrize("t", NEEDS_ID)
def test_request_with_invalid_id_is_bad_request(t: str, bad: Any) -> None:
    refuse_naming(frame(t, id=bad), "id")


@pytest.mark.parametrize("good", [0, 1, 2**32, MAX_UINT])
@pytest.mark.parametrize("t", NEEDS_ID)
def test_request_id_boundaries(t: str, good: int) -> None:
    assert getattr(parse_request(frame(t, id=good)), "id") == good  # noqa: B009


@pytest.mark.parametrize("bad", BAD_UINTS, ids=repr)
def test_ping_with_invalid_id_is_bad_request(bad: Any) -> None:
    refuse_naming({"t": "ping", "id": bad}, "id")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (7, 7),
        (MAX_UINT, MAX_UINT),
        (2**63, None),
        (-1, None),
        (True, None),
        (False, None),
        (1.0, None),
        ("7", None),
        (None, None),
        ([7], None),
    ],
    ids=repr,
)
def test_request_id_helper(value: Any, expected: int | None) -> None:
    assert request_id({"t": "x", "id": value}) == expected


def test_request_id_helper_without_id() -> None:
    assert request_id({"t": "x"}) is None
    assert MAX_UINT == 2**63 - 1


# --------------------------------------------------------------------------- unknown types

@pytest.mark.parametrize(
    "t",
    ["nope", "", "Send", "send ", " send", "group", "group.", "friend", "msg", "ok", "error",
     "__class__", "x" * 200],
)
def test_unknown_type_is_bad_request(t: str) -> None:
    err = refuse({"t": t, "id": 1})
    assert "unknown" in err.message
    assert repr(t[:40]) in err.message
    assert len(err.message) < 100


def test_unknown_type_without_id_is_still_bad_request() -> None:
    refuse({"t": "future.thing"})


# --------------------------------------------------------------------------- identifiers

REQUIRED_IDENTS = [
    ("send", "cmid"), ("send", "conv"), ("share", "cmid"), ("history", "conv"),
    ("read", "conv"), ("react", "conv"), ("unsend", "conv"), ("group.add", "conv"),
    ("group.remove", "conv"), ("group.leave", "conv"), ("friend.request", "user"),
    ("friend.accept", "user"), ("friend.remove", "user"), ("block", "user"),
    ("unblock", "user"), ("watch", "conv"), ("watch", "video_id"), ("typing", "conv"),
]
OPTIONAL_IDENTS = [("send", "to"), ("hello", "device")]

BAD_IDENTS: list[Any] = [
    pytest.param(1, id="int"),
    pytest.param(1.5, id="float"),
    pytest.param(True, id="bool"),
    pytest.param(["c1"], id="array"),
    pytest.param({"c": 1}, id="map"),
    pytest.param("", id="empty"),
    pytest.param("x" * 129, id="overlong"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("tab\there", id="tab"),
    pytest.param("\x1b[31m", id="escape"),
    pytest.param("del\x7f", id="del"),
    pytest.param("a\u2028b", id="line-separator"),
    pytest.param("zero\u200bwidth", id="zero-width-space"),
    pytest.param("rtl\u202eoverride", id="bidi-override"),
]


@pytest.mark.parametrize(("t", "field"), REQUIRED_IDENTS)
def test_missing_identifier_is_bad_request(t: str, field: str) -> None:
    refuse_naming(frame(t, **{field: ...}), field)
    refuse_naming(frame(t, **{field: None}), field)


@pytest.mark.parametrize("bad", BAD_IDENTS)
@pytest.mark.parametrize(("t", "field"), REQUIRED_IDENTS + OPTIONAL_IDENTS)
def test_invalid_identifier_is_bad_request(t: str, field: str, bad: Any) -> None:
    refuse_naming(frame(t, **{field: bad}), field)


@pytest.mark.parametrize(("t", "field"), REQUIRED_IDENTS)
def test_identifier_length_boundary(t: str, field: str) -> None:
    longest = "x" * DEFAULT_LIMITS.max_id_chars
    parsed = parse_request(frame(t, **{field: longest}))
    assert getattr(parsed, field) == longest


@pytest.mark.parametrize("ident", ["a", "user-1", "Ünïcødé", "with space", "a.b@c:d/e", "🎬"])
def test_printable_identifiers_are_accepted(ident: str) -> None:
    assert parse_request(frame("block", user=ident)) == Block(1, ident)


def test_identifier_limit_is_configurable() -> None:
    limits = Limits(max_id_chars=4)
    assert parse_request(frame("block", user="abcd"), limits) == Block(1, "abcd")
    refuse_naming(frame("block", user="abcde"), "user", limits)


# --------------------------------------------------------------------------- unsigned ints

REQUIRED_UINTS = [("read", "seq"), ("react", "seq"), ("unsend", "seq"), ("watch", "pos_ms"),
                  ("hello", "v")]
OPTIONAL_UINTS = [("history", "before"), ("history", "limit"), ("react", "at_ms")]


@pytest.mark.parametrize(("t", "field"), REQUIRED_UINTS)
def test_missing_unsigned_int_is_bad_request(t: str, field: str) -> None:
    refuse_naming(frame(t, **{field: ...}), field)
    refuse_naming(frame(t, **{field: None}), field)


@pytest.mark.parametrize("bad", BAD_UINTS, ids=repr)
@pytest.mark.parametrize(("t", "field"), REQUIRED_UINTS + OPTIONAL_UINTS)
def test_invalid_unsigned_int_is_bad_request(t: str, field: str, bad: Any) -> None:
    refuse_naming(frame(t, **{field: bad}), field)


@pytest.mark.parametrize("good", [0, 1, MAX_UINT])
@pytest.mark.parametrize(("t", "field"), [*REQUIRED_UINTS, ("history", "before"),
                                          ("react", "at_ms")])
def test_unsigned_int_boundaries(t: str, field: str, good: int) -> None:
    assert getattr(parse_request(frame(t, **{field: good})), field) == good


# --------------------------------------------------------------------------- booleans

BOOLS = [("react", "on"), ("watch", "playing")]


@pytest.mark.parametrize("bad", [..., None, 0, 1, "true", "false", [], {}], ids=repr)
@pytest.mark.parametrize(("t", "field"), BOOLS)
def test_invalid_boolean_is_bad_request(t: str, field: str, bad: Any) -> None:
    refuse_naming(frame(t, **{field: bad}), field)


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize(("t", "field"), BOOLS)
def test_booleans(t: str, field: str, value: bool) -> None:
    assert getattr(parse_request(frame(t, **{field: value})), field) is value


# --------------------------------------------------------------------------- identifier lists

REQUIRED_LISTS = [("group.add", "members"), ("group.remove", "members"), ("presence", "users")]
OPTIONAL_LISTS = [("group.create", "members"), ("share", "to"), ("share", "convs")]

BAD_LISTS: list[Any] = [
    pytest.param("bob", "{f}", id="string"),
    pytest.param(5, "{f}", id="int"),
    pytest.param(True, "{f}", id="bool"),
    pytest.param({"bob": 1}, "{f}", id="map"),
    pytest.param([1], "{f}[]", id="int-item"),
    pytest.param(["ok", None], "{f}[]", id="nil-item"),
    pytest.param(["ok", ""], "{f}[]", id="empty-item"),
    pytest.param(["x" * 129], "{f}[]", id="overlong-item"),
    pytest.param(["a\nb"], "{f}[]", id="control-item"),
    pytest.param([["bob"]], "{f}[]", id="nested-array"),
]


@pytest.mark.parametrize(("t", "field"), REQUIRED_LISTS)
def test_missing_identifier_list_is_bad_request(t: str, field: str) -> None:
    refuse_naming(frame(t, **{field: ...}), field)


@pytest.mark.parametrize(("bad", "named"), BAD_LISTS)
@pytest.mark.parametrize(("t", "field"), REQUIRED_LISTS + OPTIONAL_LISTS)
def test_invalid_identifier_list_is_bad_request(t: str, field: str, bad: Any,
                                                named: str) -> None:
    refuse_naming(frame(t, **{field: bad}), named.format(f=field))


@pytest.mark.parametrize(("t", "field"), [*REQUIRED_LISTS, ("group.create", "members")])
def test_identifier_list_over_array_limit_is_bad_request(t: str, field: str) -> None:
    limit = DEFAULT_LIMITS.max_array_len
    users = [f"u{i}" for i in range(limit + 1)]
    refuse_naming(frame(t, **{field: users}), field)
    assert len(getattr(parse_request(frame(t, **{field: users[:limit]})), field)) == limit


@pytest.mark.parametrize(("t", "field"), REQUIRED_LISTS + OPTIONAL_LISTS)
def test_identifier_lists_are_deduplicated_in_order(t: str, field: str) -> None:
    parsed = parse_request(frame(t, **{field: ["b", "a", "b", "c", "a", "b"]}))
    assert getattr(parsed, field) == ("b", "a", "c")


# --------------------------------------------------------------------------- send

def test_send_with_both_to_and_conv_is_bad_request() -> None:
    err = refuse(frame("send", to="bob", conv="c1"))
    assert "'to'" in err.message and "'conv'" in err.message


@pytest.mark.parametrize("empty", [..., None])
def test_send_with_neither_to_nor_conv_is_bad_request(empty: Any) -> None:
    err = refuse(frame("send", conv=empty, to=empty))
    assert "'to'" in err.message and "'conv'" in err.message


@pytest.mark.parametrize("text", [..., None, ""], ids=["missing", "nil", "empty"])
@pytest.mark.parametrize("kind", [..., "text"], ids=["default-kind", "text-kind"])
def test_text_message_without_text_is_bad_request(text: Any, kind: Any) -> None:
    refuse_naming(frame("send", text=text, kind=kind), "text")


@pytest.mark.parametrize("bad", [1, True, ["hi"], {"s": "hi"}], ids=repr)
def test_send_text_of_wrong_type_is_bad_request(bad: Any) -> None:
    refuse_naming(frame("send", text=bad), "text")


def test_send_text_length_limit() -> None:
    limit = DEFAULT_LIMITS.max_text_chars
    parsed = parse_request(frame("send", text="é" * limit))
    assert isinstance(parsed, Send)
    assert parsed.text == "é" * limit
    refuse_naming(frame("send", text="a" * (limit + 1)), "text")
    refuse_naming(frame("send", text="ab"), "text", Limits(max_text_chars=1))


@pytest.mark.parametrize("video", [CARD, {}, "not a card"], ids=["card", "empty-map", "string"])
def test_text_message_with_a_video_is_bad_request(video: Any) -> None:
    refuse_naming(frame("send", video=video), "video")
    refuse_naming(frame("send", kind="text", video=video), "video")


@pytest.mark.parametrize("kind", ["audio", "TEXT", "Video", "", 1, True, ["text"]],
                         ids=repr)
def test_send_with_unknown_kind_is_bad_request(kind: Any) -> None:
    refuse_naming(frame("send", kind=kind), "kind")


@pytest.mark.parametrize("kind", [..., None, "text"], ids=["missing", "nil", "text"])
def test_send_kind_defaults_to_text(kind: Any) -> None:
    parsed = parse_request(frame("send", kind=kind))
    assert isinstance(parsed, Send)
    assert parsed.kind == "text"


@pytest.mark.parametrize("video", [..., None])
def test_video_message_without_card_is_bad_request(video: Any) -> None:
    refuse_naming(frame("send", kind="video", text=..., video=video), "video")


def test_video_message_text_is_optional() -> None:
    parsed = parse_request(frame("send", kind="video", text=..., video=CARD))
    assert isinstance(parsed, Send)
    assert parsed.text is None
    parsed = parse_request(frame("send", kind="video", text="", video=CARD))
    assert isinstance(parsed, Send)
    assert parsed.text is None


@pytest.mark.parametrize(
    ("reply", "named"),
    [
        ("3", "reply"),
        (3, "reply"),
        ([3], "reply"),
        (True, "reply"),
        ({}, "reply.seq"),
        ({"seq": None}, "reply.seq"),
        ({"seq": -1}, "reply.seq"),
        ({"seq": True}, "reply.seq"),
        ({"seq": 2**63}, "reply.seq"),
        ({"seq": "3"}, "reply.seq"),
        ({"seq": 3, "at_ms": -5}, "reply.at_ms"),
        ({"seq": 3, "at_ms": False}, "reply.at_ms"),
        ({"seq": 3, "at_ms": 1.5}, "reply.at_ms"),
    ],
    ids=repr,
)
def test_send_with_invalid_reply_is_bad_request(reply: Any, named: str) -> None:
    refuse_naming(frame("send", reply=reply), named)


def test_send_reply_is_optional() -> None:
    parsed = parse_request(frame("send", reply=None))
    assert isinstance(parsed, Send)
    assert parsed.reply is None
    parsed = parse_request(frame("send", reply={"seq": 0, "at_ms": 0}))
    assert isinstance(parsed, Send)
    assert parsed.reply == Reply(0, 0)


@pytest.mark.parametrize("reply", [Reply(5), Reply(5, 0), Reply(5, 99)], ids=repr)
def test_reply_to_wire_round_trips(reply: Reply) -> None:
    parsed = parse_request(frame("send", reply=reply.to_wire()))
    assert isinstance(parsed, Send)
    assert parsed.reply == reply
    assert Reply(5).to_wire() == {"seq": 5}


# --------------------------------------------------------------------------- video cards

BAD_CARDS: list[Any] = [
    pytest.param("https://x.example/v", "video", id="string"),
    pytest.param(["vid", "https://x.example"], "video", id="array"),
    pytest.param(7, "video", id="int"),
    pytest.param({"url": "https://x.example/v"}, "video.id", id="missing-id"),
    pytest.param({**CARD, "id": None}, "video.id", id="nil-id"),
    pytest.param({**CARD, "id": ""}, "video.id", id="empty-id"),
    pytest.param({**CARD, "id": 42}, "video.id", id="int-id"),
    pytest.param({**CARD, "id": "x" * 129}, "video.id", id="overlong-id"),
    pytest.param({**CARD, "id": "a\nb"}, "video.id", id="control-id"),
    pytest.param({"id": "v"}, "video.url", id="missing-url"),
    pytest.param({**CARD, "url": 5}, "video.url", id="int-url"),
    pytest.param({**CARD, "url": ""}, "video.url", id="empty-url"),
    pytest.param({**CARD, "url": "ftp://x.example/v"}, "video.url", id="ftp-url"),
    pytest.param({**CARD, "url": "javascript:alert(1)"}, "video.url", id="javascript-url"),
    pytest.param({**CARD, "url": "data:text/html,hi"}, "video.url", id="data-url"),
    pytest.param({**CARD, "url": "file:///etc/passwd"}, "video.url", id="file-url"),
    pytest.param({**CARD, "url": "https://"}, "video.url", id="no-host"),
    pytest.param({**CARD, "url": "https:///path"}, "video.url", id="empty-host"),
    pytest.param({**CARD, "url": "x.example/v"}, "video.url", id="no-scheme"),
    pytest.param({**CARD, "url": "//x.example/v"}, "video.url", id="scheme-relative"),
    pytest.param({**CARD, "url": "https://x.example/" + "a" * 2048}, "video.url", id="long-url"),
    pytest.param({**CARD, "url": "https://user:pass@x.example/v"}, "video.url", id="credentials"),
    pytest.param({**CARD, "url": "https://x.example@evil.example/v"}, "video.url", id="user-at"),
    pytest.param({**CARD, "url": "https://x.example\\@evil.example/v"}, "video.url", id="backslash"),
    pytest.param({**CARD, "url": "https://x.example/\\evil"}, "video.url", id="backslash-path"),
    pytest.param({**CARD, "url": "https://x.ex\tample/v"}, "video.url", id="tab"),
    pytest.param({**CARD, "url": "https://x.example/v\n"}, "video.url", id="newline"),
    pytest.param({**CARD, "url": "https://x.example/\u202egpj.exe"}, "video.url", id="bidi"),
    pytest.param({**CARD, "url": "https://x.example/\u200bv"}, "video.url", id="zero-width"),
    pytest.param({**CARD, "thumb": "https://u:p@x.example/t.jpg"}, "video.thumb", id="credentials-thumb"),
    pytest.param({**CARD, "thumb": "ftp://x.example/t.jpg"}, "video.thumb", id="ftp-thumb"),
    pytest.param({**CARD, "thumb": 1}, "video.thumb", id="int-thumb"),
    pytest.param({**CARD, "thumb": "thumb.jpg"}, "video.thumb", id="relative-thumb"),
    pytest.param({**CARD, "caption": 1}, "video.caption", id="int-caption"),
    pytest.param({**CARD, "caption": "c" * 4001}, "video.caption", id="long-caption"),
    pytest.param({**CARD, "author": ""}, "video.author", id="empty-author"),
    pytest.param({**CARD, "author": 3}, "video.author", id="int-author"),
    pytest.param({**CARD, "author": "a\tb"}, "video.author", id="control-author"),
    pytest.param({**CARD, "duration_ms": -1}, "video.duration_ms", id="negative-duration"),
    pytest.param({**CARD, "duration_ms": True}, "video.duration_ms", id="bool-duration"),
    pytest.param({**CARD, "duration_ms": 2**63}, "video.duration_ms", id="huge-duration"),
    pytest.param({**CARD, "duration_ms": 1.5}, "video.duration_ms", id="float-duration"),
    pytest.param({**CARD, "at_ms": -1}, "video.at_ms", id="negative-at"),
    pytest.param({**CARD, "at_ms": "10"}, "video.at_ms", id="string-at"),
    pytest.param({**CARD, "duration_ms": 1000, "at_ms": 1001}, "video.at_ms", id="at-beyond"),
    pytest.param({**CARD, "duration_ms": 0, "at_ms": 1}, "video.at_ms", id="at-beyond-zero"),
]


@pytest.mark.parametrize(("card", "named"), BAD_CARDS)
def test_send_with_invalid_video_card_is_bad_request(card: Any, named: str) -> None:
    refuse_naming(frame("send", kind="video", text=..., video=card), named)


@pytest.mark.parametrize(("card", "named"), BAD_CARDS)
def test_share_with_invalid_video_card_is_bad_request(card: Any, named: str) -> None:
    refuse_naming(frame("share", video=card), named)


@pytest.mark.parametrize(("card", "named"), BAD_CARDS)
def test_parse_video_card_names_the_field(card: Any, named: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_video_card(card)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert f"'{named}'" in info.value.message


def test_a_card_url_shows_the_host_it_opens() -> None:
    """An '@' in the host part hides the real host; in the path (a TikTok handle) it is fine."""
    for url in ("https://www.tiktok.com/@cat/video/7?lang=en#t=3", "http://x.example:8080/a%20b",
                "https://例え.jp/動画", "https://[::1]:8443/v"):
        assert parse_video_card({**CARD, "url": url}).url == url
    with pytest.raises(RequestError, match="no credentials"):
        parse_video_card({**CARD, "url": "https://www.tiktok.com@evil.example/@cat/video/7"})


def test_parse_video_card_uses_the_given_name() -> None:
    with pytest.raises(RequestError) as info:
        parse_video_card({**CARD, "url": "ftp://x"}, name="clip")
    assert "'clip.url'" in info.value.message


@pytest.mark.parametrize(
    "card",
    [
        CARD,
        FULL_CARD,
        {**CARD, "url": "HTTPS://X.EXAMPLE/V"},
        {**CARD, "duration_ms": 1000, "at_ms": 1000},
        {**CARD, "duration_ms": 0, "at_ms": 0},
        {**CARD, "at_ms": 5_000},
        {**CARD, "duration_ms": 5_000},
        {**CARD, "caption": ""},
        {**CARD, "thumb": None, "caption": None, "author": None},
        {**CARD, "url": "https://x.example/" + "a" * (2048 - len("https://x.example/"))},
    ],
    ids=["minimal", "full", "upper-scheme", "at-end", "zero-length", "at-only",
         "duration-only", "empty-caption", "explicit-nils", "longest-url"],
)
def test_valid_video_cards(card: dict[str, Any]) -> None:
    parsed = parse_video_card(card)
    assert parsed.id == card["id"]
    assert parsed.url == card["url"]
    assert parse_video_card(parsed.to_wire()) == parsed
    send = parse_request(frame("send", kind="video", text=..., video=card))
    assert isinstance(send, Send)
    assert send.video == parsed


def test_video_card_to_wire_omits_absent_fields() -> None:
    assert VideoCard("v", "https://x.example").to_wire() == {"id": "v", "url": "https://x.example"}
    assert VideoCard(**FULL_CARD).to_wire() == FULL_CARD


# --------------------------------------------------------------------------- share

@pytest.mark.parametrize(
    "targets",
    [{}, {"to": []}, {"convs": []}, {"to": [], "convs": []}, {"to": None, "convs": None}],
    ids=["none", "empty-to", "empty-convs", "both-empty", "both-nil"],
)
def test_share_without_targets_is_bad_request(targets: dict[str, Any]) -> None:
    data = {k: v for k, v in frame("share").items() if k != "to"}
    err = refuse({**data, **targets})
    assert "'to'" in err.message and "'convs'" in err.message


def test_share_target_limit() -> None:
    bound = DEFAULT_LIMITS.max_share_targets
    users = [f"u{i}" for i in range(bound + 1)]
    convs = [f"c{i}" for i in range(bound + 1)]
    parsed = parse_request(frame("share", to=users[:bound]))
    assert isinstance(parsed, Share)
    assert len(parsed.to) == bound
    refuse_naming(frame("share", to=users), "to")
    refuse_naming(frame("share", to=..., convs=convs), "convs")
    # Each list within the bound, but together over it.
    err = refuse(frame("share", to=users[:60], convs=convs[:41]))
    assert str(bound) in err.message
    parsed = parse_request(frame("share", to=users[:60], convs=convs[:40]))
    assert isinstance(parsed, Share)


def test_share_target_limit_is_configurable() -> None:
    limits = Limits(max_share_targets=3)
    parse_request(frame("share", to=["a", "b"], convs=["c"]), limits)
    refuse(frame("share", to=["a", "b"], convs=["c", "d"]), limits)
    refuse_naming(frame("share", to=["a", "b", "c", "d"]), "to", limits)


def test_share_duplicates_count_once_towards_the_limit() -> None:
    limits = Limits(max_share_targets=3)
    parsed = parse_request(frame("share", to=["a", "a", "b"], convs=["c", "c"]), limits)
    assert isinstance(parsed, Share)
    assert (parsed.to, parsed.convs) == (("a", "b"), ("c",))


@pytest.mark.parametrize("video", [..., None])
def test_share_without_video_is_bad_request(video: Any) -> None:
    refuse_naming(frame("share", video=video), "video")


def test_share_text_note() -> None:
    parsed = parse_request(frame("share", text=""))
    assert isinstance(parsed, Share)
    assert parsed.text is None
    refuse_naming(frame("share", text=5), "text")
    refuse_naming(frame("share", text="n" * (DEFAULT_LIMITS.max_text_chars + 1)), "text")


# --------------------------------------------------------------------------- history

@pytest.mark.parametrize("limit", [0, 101, 1000, MAX_UINT])
def test_history_limit_out_of_range_is_bad_request(limit: int) -> None:
    refuse_naming(frame("history", limit=limit), "limit")


@pytest.mark.parametrize("limit", [1, 50, 100])
def test_history_limit_in_range(limit: int) -> None:
    parsed = parse_request(frame("history", limit=limit))
    assert isinstance(parsed, History)
    assert parsed.limit == limit


def test_history_limit_bound_is_configurable() -> None:
    limits = Limits(max_history_limit=10)
    assert parse_request(frame("history", limit=10), limits) == History(1, "c1", None, 10)
    refuse_naming(frame("history", limit=11), "limit", limits)


def test_history_defaults() -> None:
    assert parse_request(frame("history")) == History(1, "c1", None, 50)
    assert parse_request(frame("history", before=None, limit=None)) == History(1, "c1", None, 50)


# --------------------------------------------------------------------------- react

@pytest.mark.parametrize(
    "emoji",
    [..., None, "", " ", "   ", "\t", "\n", "\u3000", "\u00a0", "\u200d", "👍\n", "a\x00",
     "x" * 33, 1, True, ["👍"]],
    ids=repr,
)
def test_invalid_emoji_is_bad_request(emoji: Any) -> None:
    refuse_naming(frame("react", emoji=emoji), "emoji")


@pytest.mark.parametrize(
    "emoji",
    ["👍", "❤️", "👍🏽", "🇫🇷", "1️⃣", "+1", ":party:", "x" * 32,
     "❤️\u200d🔥", "👩\u200d👩\u200d👧", "🏳️\u200d🌈"],
    ids=repr,
)
def test_valid_emoji(emoji: str) -> None:
    parsed = parse_request(frame("react", emoji=emoji))
    assert isinstance(parsed, React)
    assert parsed.emoji == emoji


def test_emoji_limit_is_configurable() -> None:
    limits = Limits(max_emoji_chars=2)
    parse_request(frame("react", emoji="👍🏽"), limits)
    refuse_naming(frame("react", emoji="abc"), "emoji", limits)


# --------------------------------------------------------------------------- group.create

def test_group_title() -> None:
    limit = DEFAULT_LIMITS.max_title_chars
    parsed = parse_request(frame("group.create", title="t" * limit))
    assert isinstance(parsed, GroupCreate)
    assert parsed.title == "t" * limit
    refuse_naming(frame("group.create", title="t" * (limit + 1)), "title")
    refuse_naming(frame("group.create", title=5), "title")
    refuse_naming(frame("group.create", title=["t"]), "title")
    assert parse_request(frame("group.create", title=...)) == GroupCreate(1, ("a", "b"), "")


# --------------------------------------------------------------------------- tokens

BAD_TOKENS = [..., None, "", 1, True, ["a.b.c"], {"jwt": "x"}]


@pytest.mark.parametrize("token", BAD_TOKENS, ids=repr)
def test_missing_or_invalid_token_in_refresh_is_bad_request(token: Any) -> None:
    refuse_naming(frame("refresh", token=token), "token")


@pytest.mark.parametrize("token", BAD_TOKENS, ids=repr)
def test_missing_or_invalid_token_in_hello_is_unauthorized(token: Any) -> None:
    # A hello without a usable token is an authentication failure (close 4001).
    with pytest.raises(RequestError) as info:
        parse_request(frame("hello", token=token))
    assert info.value.code is ErrorCode.UNAUTHORIZED
    assert "'token'" in info.value.message


# --------------------------------------------------------------------------- ping and typing

def test_ping_and_typing_need_no_id() -> None:
    assert parse_request({"t": "ping"}) == Ping(None)
    assert parse_request({"t": "typing", "conv": "c1"}) == Typing("c1")


def test_typing_with_an_invalid_id_is_still_a_signal() -> None:
    assert parse_request({"t": "typing", "id": "junk", "conv": "c1"}) == Typing("c1")


# --------------------------------------------------------------------------- hello

def test_parse_hello_directly() -> None:
    hello = parse_hello({"t": "hello", "id": 3, "v": PROTOCOL_VERSION, "token": "tok",
                         "device": "d1", "resume": {"c1": 5}})
    assert hello == Hello(3, 1, "tok", "d1", {"c1": 5})


@pytest.mark.parametrize("resume", [None, {}], ids=repr)
def test_hello_without_resume(resume: Any) -> None:
    assert parse_hello(frame("hello", resume=resume)).resume == {}


@pytest.mark.parametrize(
    "resume",
    [[], [["c1", 1]], "c1", 0, 5, False, True, ""],
    ids=repr,
)
def test_hello_resume_must_be_a_map(resume: Any) -> None:
    refuse_naming(frame("hello", resume=resume), "resume")
    with pytest.raises(RequestError, match="'resume'"):
        parse_hello(frame("hello", resume=resume))


@pytest.mark.parametrize("key", ["", "x" * 129, "a\nb", "\x00"], ids=repr)
def test_hello_resume_keys_are_identifiers(key: str) -> None:
    err = refuse(frame("hello", resume={"c1": 1, key: 2}))
    assert "'resume key'" in err.message


@pytest.mark.parametrize("seq", [None, -1, 2**63, True, "1", 1.0, [1]], ids=repr)
def test_hello_resume_values_are_unsigned_ints(seq: Any) -> None:
    refuse_naming(frame("hello", resume={"c1": seq}), "resume[c1]")


def test_hello_resume_boundaries() -> None:
    resume = {"c1": 0, "c2": MAX_UINT, "x" * 128: 1}
    assert parse_hello(frame("hello", resume=resume)).resume == resume


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"id": ...}, "id"),
        ({"id": -1}, "id"),
        ({"v": ...}, "v"),
        ({"v": "1"}, "v"),
        ({"v": True}, "v"),
        ({"device": ""}, "device"),
        ({"device": 7}, "device"),
        ({"device": "d\n"}, "device"),
    ],
    ids=repr,
)
def test_parse_hello_refusals_name_the_field(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_hello(frame("hello", **changes))
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert f"'{named}'" in info.value.message


def test_hello_limits_are_configurable() -> None:
    limits = Limits(max_id_chars=3)
    assert parse_hello(frame("hello", resume={"abc": 1}), limits).resume == {"abc": 1}
    with pytest.raises(RequestError):
        parse_hello(frame("hello", resume={"abcd": 1}), limits)
