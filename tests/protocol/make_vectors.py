# ruff: noqa: E501  (a table of vectors reads better one vector to a line)
"""Write ``protocol/vectors.json``: the protocol's shared test vectors.

Run ``.venv/bin/python tests/protocol/make_vectors.py`` after changing the codec,
the request rules or this list, and commit the JSON. ``test_vectors.py`` checks the
committed file against the Python codec and against this script's output, and the
JavaScript client (``clients/js/test/vectors.test.ts``) checks it against its own
decoder and validator, so the two implementations cannot drift apart.

Each vector is one WebSocket message as bytes, with what a conforming peer must
make of it. Every expectation is written down here by hand and checked against
the Python implementation while the file is generated: the script refuses to
write a vector the Python codec disagrees with.

A vector's ``value`` is the decoded msgpack value in *tagged JSON*: JSON values as
themselves, except ``{"$int": "123"}`` for an integer beyond 2^53 - 1, ``{"$float":
1.0}`` for a float, ``{"$bin": HEX}``, ``{"$ext": [TYPE, HEX]}``, and ``{"$map":
[[KEY, VALUE], ...]}`` for a map with a non-string key or a key starting with ``$``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import msgpack

from clipwire.protocol import (
    DEFAULT_LIMITS,
    FrameError,
    FrameTooLarge,
    Limits,
    RequestError,
    decode,
    encode,
    parse_request,
)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "protocol" / "vectors.json"
SAFE = 2**53 - 1

# ---------------------------------------------------------------- tagged JSON


def to_tagged(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -SAFE <= value <= SAFE else {"$int": str(value)}
    if isinstance(value, float):
        assert math.isfinite(value)
        return {"$float": value}
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, msgpack.ExtType):
        return {"$ext": [value.code, value.data.hex()]}
    if isinstance(value, list | tuple):
        return [to_tagged(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: to_tagged(v) for k, v in value.items()}
        return {"$map": [[to_tagged(k), to_tagged(v)] for k, v in value.items()]}
    raise TypeError(type(value))


def from_tagged(value: Any) -> Any:
    if isinstance(value, list):
        return [from_tagged(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            (key, item), = value.items()
            if key == "$int":
                return int(item)
            if key == "$float":
                return float(item)
            if key == "$bin":
                return bytes.fromhex(item)
            if key == "$ext":
                return msgpack.ExtType(item[0], bytes.fromhex(item[1]))
            if key == "$map":
                return {from_tagged(k): from_tagged(v) for k, v in item}
        return {k: from_tagged(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- building vectors

VECTORS: list[dict[str, Any]] = []
NAMES: set[str] = set()


def pack(value: Any) -> bytes:
    """Canonical msgpack, as the hub's codec writes it."""
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def _limits(overrides: dict[str, int] | None) -> Limits:
    return dataclasses.replace(DEFAULT_LIMITS, **(overrides or {}))


def parsed_form(request: Any) -> dict[str, Any]:
    out = {"type": type(request).__name__}
    out.update(dataclasses.asdict(request))
    video = out.get("video")
    if isinstance(video, dict) and video.get("verified") is None:
        # Set by the hub's card resolver, never parsed from a client: not part of a request.
        del video["verified"]
    return out


def _add(name: str, direction: str, data: bytes, *, limits: dict[str, int] | None = None,
         note: str | None = None, expect_frame: int | None = None,
         request: dict[str, Any] | None = None) -> None:
    """Record one vector after checking its expectations against the Python codec."""
    assert name not in NAMES, name
    NAMES.add(name)
    vector: dict[str, Any] = {"name": name, "direction": direction, "hex": data.hex()}
    if limits:
        vector["limits"] = limits
    if note:
        vector["note"] = note
    lim = _limits(limits)
    if expect_frame is not None:
        try:
            decode(data, lim)
        except FrameError as exc:
            assert exc.close_code == expect_frame, (name, exc.close_code)
            assert isinstance(exc, FrameTooLarge) == (expect_frame == 1009), name
        else:
            raise AssertionError(f"{name}: the codec decoded it")
        vector["frame_error"] = {"close": expect_frame}
        VECTORS.append(vector)
        return
    frame = decode(data, lim)
    vector["value"] = to_tagged(frame)
    assert from_tagged(vector["value"]) == frame, name
    vector["canonical"] = encode(frame) == data
    if direction == "c2h":
        assert request is not None, name
        if "error" in request:
            try:
                parse_request(frame, lim)
            except RequestError as exc:
                assert str(exc.code) == request["error"], (name, exc)
                field = request["field"]
                if field is not None:
                    assert f"'{field}'" in exc.message, (name, exc.message)
            else:
                raise AssertionError(f"{name}: parse_request accepted it")
            vector["request"] = {"error": request["error"], "field": request["field"]}
        else:
            parsed = parsed_form(parse_request(frame, lim))
            assert parsed["type"] == request["type"], (name, parsed)
            for key, expected in request.items():
                assert parsed[key] == expected, (name, key, parsed[key], expected)
            vector["request"] = {"parsed": to_tagged(parsed)}
    else:
        assert request is None, name
    VECTORS.append(vector)


def valid(name: str, frame: dict[str, Any], request_type: str, *, data: bytes | None = None,
          limits: dict[str, int] | None = None, note: str | None = None, **expected: Any) -> None:
    """A request the hub accepts; ``expected`` are fields of the parsed request to pin."""
    _add(name, "c2h", pack(frame) if data is None else data, limits=limits, note=note,
         request={"type": request_type, **expected})


def refused(name: str, frame: dict[str, Any], field: str | None, code: str = "bad_request", *,
            data: bytes | None = None, limits: dict[str, int] | None = None, note: str | None = None) -> None:
    """A readable frame whose request the hub refuses with ``code``, naming ``field``."""
    _add(name, "c2h", pack(frame) if data is None else data, limits=limits, note=note,
         request={"error": code, "field": field})


def broken(name: str, data: bytes, close: int = 4003, *, limits: dict[str, int] | None = None,
           note: str | None = None) -> None:
    """Bytes that are not a readable frame: the hub closes the connection with ``close``."""
    _add(name, "c2h", data, limits=limits, note=note, expect_frame=close)


def event(name: str, frame: dict[str, Any], *, data: bytes | None = None, note: str | None = None) -> None:
    """A frame the hub sends, which a client must decode to ``frame``."""
    _add(f"hub: {name}", "h2c", pack(frame) if data is None else data, note=note)


def card(video_id: str = "v42", **fields: Any) -> dict[str, Any]:
    return {"id": video_id, "url": f"https://cdn.example/{video_id}.mp4", **fields}


FULL_CARD = card(thumb="https://cdn.example/v42.jpg", caption="Sunset ride", author="dave",
                 duration_ms=61000, at_ms=12000)
PARSED_FULL_CARD = {"id": "v42", "url": "https://cdn.example/v42.mp4", "thumb": "https://cdn.example/v42.jpg",
                    "caption": "Sunset ride", "author": "dave", "duration_ms": 61000, "at_ms": 12000}
TS = 1_795_825_577_123  # a timestamp: over 32 bits, so msgpack writes it as uint64
DM = "dm:39ad1631987c9eeb41aa6133"
GROUP = "g:Fq3k9ZpX2mLbT0wa"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTc5NTkxMTk4Mn0.c2lnbmF0dXJl"
FAMILY = "\U0001F468\u200D\U0001F469\u200D\U0001F467"  # three emoji glued by U+200D


def requests() -> None:
    # hello
    valid("hello: minimal", {"t": "hello", "id": 1, "v": 1, "token": TOKEN}, "Hello",
          device=None, resume={})
    valid("hello: device and resume", {"t": "hello", "id": 1, "v": 1, "token": TOKEN, "device": "phone 7f3a",
                                       "resume": {GROUP: 4, DM: 0}}, "Hello", resume={GROUP: 4, DM: 0})
    valid("hello: v 2 parses; the hub then refuses it (4003)", {"t": "hello", "id": 1, "v": 2, "token": TOKEN},
          "Hello", v=2, note="parse_request checks only that v is a uint; the hub answers bad_request and "
          "closes with 4003 when v != 1")
    valid("hello: nil resume and device are absent", {"t": "hello", "id": 1, "v": 1, "token": TOKEN,
                                                     "device": None, "resume": None}, "Hello", resume={})
    refused("hello: no token", {"t": "hello", "id": 1, "v": 1}, "token", "unauthorized")
    refused("hello: empty token", {"t": "hello", "id": 1, "v": 1, "token": ""}, "token", "unauthorized")
    refused("hello: token not a string", {"t": "hello", "id": 1, "v": 1, "token": 42}, "token", "unauthorized")
    refused("hello: no v", {"t": "hello", "id": 1, "token": TOKEN}, "v")
    refused("hello: resume not a map", {"t": "hello", "id": 1, "v": 1, "token": TOKEN, "resume": [1]}, "resume")
    refused("hello: resume seq negative", {"t": "hello", "id": 1, "v": 1, "token": TOKEN, "resume": {"c1": -1}},
            "resume[c1]")
    refused("hello: resume key empty", {"t": "hello", "id": 1, "v": 1, "token": TOKEN, "resume": {"": 1}},
            "resume key")
    refused("hello: device with a control character", {"t": "hello", "id": 1, "v": 1, "token": TOKEN,
                                                       "device": "a\nb"}, "device")
    refused("hello: no id", {"t": "hello", "v": 1, "token": TOKEN}, "id")

    # ids
    valid("id 0", {"t": "ping", "id": 0}, "Ping", id=0)
    valid("id 2^63-1 (uint64)", {"t": "read", "id": 2**63 - 1, "conv": DM, "seq": 1}, "Read", id=2**63 - 1)
    refused("id 2^63", {"t": "read", "id": 2**63, "conv": DM, "seq": 1}, "id")
    refused("id 2^64-1", {"t": "read", "id": 2**64 - 1, "conv": DM, "seq": 1}, "id")
    refused("id missing", {"t": "send", "to": "bob", "cmid": "m1", "text": "hi"}, "id")
    refused("id a string", {"t": "send", "id": "11", "to": "bob", "cmid": "m1", "text": "hi"}, "id")
    refused("id negative", {"t": "history", "id": -1, "conv": DM}, "id")
    refused("id true", {"t": "history", "id": True, "conv": DM}, "id")
    refused("id a float 1.0", {"t": "history", "id": 1.0, "conv": DM}, "id",
            note="floats are refused even when integral; a JavaScript number cannot say 1.0, "
            "so a JavaScript encoder always writes an integer here")
    refused("unknown request type", {"t": "teleport", "id": 3}, None)

    # send
    valid("send: text to a user", {"t": "send", "id": 2, "to": "bob", "cmid": "a-0001", "text": "hi bob"},
          "Send", to="bob", conv=None, kind="text", text="hi bob", video=None, reply=None)
    valid("send: text to a conversation with a reply at a moment",
          {"t": "send", "id": 9, "conv": GROUP, "cmid": "b-0310", "text": "that jump!",
           "reply": {"seq": 5, "at_ms": 42000}}, "Send", reply={"seq": 5, "at_ms": 42000})
    valid("send: reply without a moment", {"t": "send", "id": 9, "conv": GROUP, "cmid": "b-1", "text": "yes",
                                           "reply": {"seq": 5}}, "Send", reply={"seq": 5, "at_ms": None})
    valid("send: video card with every field and a note",
          {"t": "send", "id": 3, "to": "bob", "cmid": "a-2", "kind": "video", "text": "watch", "video": FULL_CARD},
          "Send", kind="video", text="watch", video=PARSED_FULL_CARD)
    valid("send: video with an empty note", {"t": "send", "id": 3, "conv": DM, "cmid": "a-3", "kind": "video",
                                             "text": "", "video": card()}, "Send", text=None)
    valid("send: nil kind means text, unknown keys are ignored",
          {"t": "send", "id": 4, "to": "bob", "cmid": "a-4", "kind": None, "text": "x", "flavour": [1, {"a": 2}],
           "reply": None}, "Send", kind="text", reply=None)
    valid("send: identifier with an inner space, 128 characters",
          {"t": "send", "id": 4, "to": "bob smith" + "x" * 119, "cmid": "a-5", "text": "x"}, "Send")
    valid("send: identifier of 128 astral characters (code points, not UTF-16 units)",
          {"t": "send", "id": 4, "to": "\U0001F600" * 128, "cmid": "a-6", "text": "x"}, "Send")
    valid("send: text of max_text_chars astral characters", {"t": "send", "id": 4, "to": "bob", "cmid": "a-7",
                                                             "text": "\U0001F600" * 10}, "Send",
          limits={"max_text_chars": 10})
    valid("send: video at_ms equal to duration_ms",
          {"t": "send", "id": 4, "to": "bob", "cmid": "a-8", "kind": "video",
           "video": card(duration_ms=1000, at_ms=1000)}, "Send")
    valid("send: uppercase URL scheme, IPv6 host", {"t": "send", "id": 4, "to": "bob", "cmid": "a-9", "kind": "video",
                                                   "video": card(url="HTTPS://[::1]:8443/v.mp4")}, "Send")
    valid("send: URL with a leading space (urlsplit strips it)",
          {"t": "send", "id": 4, "to": "bob", "cmid": "a-10", "kind": "video",
           "video": card(url=" http://cdn.example/v.mp4")}, "Send")
    refused("send: both to and conv", {"t": "send", "id": 5, "to": "bob", "conv": DM, "cmid": "m", "text": "x"}, "to")
    refused("send: neither to nor conv", {"t": "send", "id": 5, "cmid": "m", "text": "x"}, "to")
    refused("send: to empty", {"t": "send", "id": 5, "to": "", "cmid": "m", "text": "x"}, "to")
    refused("send: to of 129 characters", {"t": "send", "id": 5, "to": "x" * 129, "cmid": "m", "text": "x"}, "to")
    refused("send: to of 129 astral characters", {"t": "send", "id": 5, "to": "\U0001F600" * 129, "cmid": "m",
                                                  "text": "x"}, "to")
    refused("send: to with a newline", {"t": "send", "id": 5, "to": "bo\nb", "cmid": "m", "text": "x"}, "to")
    refused("send: to with a zero width space (Cf)", {"t": "send", "id": 5, "to": "bo\u200bb", "cmid": "m",
                                                      "text": "x"}, "to")
    refused("send: to with a no-break space (Zs)", {"t": "send", "id": 5, "to": "bo\u00a0b", "cmid": "m",
                                                    "text": "x"}, "to")
    refused("send: to with a private use character (Co)", {"t": "send", "id": 5, "to": "bo\ue000b", "cmid": "m",
                                                           "text": "x"}, "to")
    refused("send: conv not a string", {"t": "send", "id": 5, "conv": 7, "cmid": "m", "text": "x"}, "conv")
    refused("send: kind audio", {"t": "send", "id": 5, "to": "bob", "cmid": "m", "kind": "audio", "text": "x"},
            "kind")
    refused("send: no text", {"t": "send", "id": 5, "to": "bob", "cmid": "m"}, "text")
    refused("send: empty text", {"t": "send", "id": 5, "to": "bob", "cmid": "m", "text": ""}, "text")
    refused("send: text not a string", {"t": "send", "id": 5, "to": "bob", "cmid": "m", "text": 12}, "text")
    refused("send: text over max_text_chars", {"t": "send", "id": 5, "to": "bob", "cmid": "m",
                                               "text": "\U0001F600" * 11}, "text", limits={"max_text_chars": 10})
    refused("send: text message with a video", {"t": "send", "id": 5, "to": "bob", "cmid": "m", "text": "x",
                                                "video": card()}, "video")
    refused("send: video message without a card", {"t": "send", "id": 5, "to": "bob", "cmid": "m",
                                                   "kind": "video"}, "video")
    refused("send: no cmid", {"t": "send", "id": 5, "to": "bob", "text": "x"}, "cmid")
    refused("send: reply not a map", {"t": "send", "id": 5, "to": "bob", "cmid": "m", "text": "x", "reply": 3},
            "reply")
    refused("send: reply without seq", {"t": "send", "id": 5, "to": "bob", "cmid": "m", "text": "x",
                                        "reply": {"at_ms": 3}}, "reply.seq")
    refused("send: reply at_ms negative", {"t": "send", "id": 5, "to": "bob", "cmid": "m", "text": "x",
                                           "reply": {"seq": 1, "at_ms": -3}}, "reply.at_ms")

    def video(name: str, bad_card: Any, field: str, **kw: Any) -> None:
        refused(f"video card: {name}", {"t": "send", "id": 6, "to": "bob", "cmid": "m", "kind": "video",
                                        "video": bad_card}, field, **kw)

    video("not a map", ["v1"], "video")
    video("no id", {"url": "https://cdn.example/v.mp4"}, "video.id")
    video("id with a tab", card("v\t1"), "video.id")
    video("no url", {"id": "v1"}, "video.url")
    video("ftp url", card(url="ftp://cdn.example/v.mp4"), "video.url")
    video("url without a host", card(url="https:///v.mp4"), "video.url")
    video("url without //", card(url="https:cdn.example/v.mp4"), "video.url")
    video("url over max_url_chars", card(url="https://cdn.example/" + "v" * 20), "video.url",
          limits={"max_url_chars": 30})
    video("url with an unclosed IPv6 bracket", card(url="http://[::1/v.mp4"), "video.url",
          note="urllib raises ValueError here; protocol/frames.py turns it into bad_request")
    video("url with an invalid bracketed host", card(url="http://[zz]/v.mp4"), "video.url")
    video("url with an IPv4 address in brackets", card(url="http://[127.0.0.1]/v.mp4"), "video.url")
    video("url whose host NFKC turns into a delimiter", card(url="http://cdn\uff03example.com/v.mp4"), "video.url")
    video("bad thumb", card(thumb="javascript:alert(1)"), "video.thumb")
    video("caption not a string", card(caption=["x"]), "video.caption")
    video("caption over max_text_chars", card(caption="c" * 11), "video.caption", limits={"max_text_chars": 10})
    video("author with a line separator", card(author="da\u2028ve"), "video.author")
    video("duration_ms a float", card(duration_ms=61000.0), "video.duration_ms")
    video("at_ms negative", card(at_ms=-1), "video.at_ms")
    video("at_ms beyond duration_ms", card(duration_ms=1000, at_ms=1001), "video.at_ms")

    # share
    valid("share: users and groups, repeats dropped",
          {"t": "share", "id": 4, "cmid": "a-0002", "text": "watch the jump", "video": FULL_CARD,
           "to": ["bob", "carol", "bob"], "convs": [GROUP, GROUP]}, "Share",
          to=("bob", "carol"), convs=(GROUP,), text="watch the jump", video=PARSED_FULL_CARD)
    valid("share: convs only, empty note", {"t": "share", "id": 4, "cmid": "s", "text": "", "video": card(),
                                           "convs": [GROUP]}, "Share", to=(), text=None)
    valid("share: max_share_targets after repeats are dropped",
          {"t": "share", "id": 4, "cmid": "s", "video": card(), "to": ["u1", "u2", "u1"], "convs": ["c1"]},
          "Share", limits={"max_share_targets": 3})
    refused("share: no target", {"t": "share", "id": 4, "cmid": "s", "video": card()}, "to")
    refused("share: empty targets", {"t": "share", "id": 4, "cmid": "s", "video": card(), "to": [], "convs": []},
            "to")
    refused("share: to not an array", {"t": "share", "id": 4, "cmid": "s", "video": card(), "to": "bob"}, "to")
    refused("share: to holds a number", {"t": "share", "id": 4, "cmid": "s", "video": card(), "to": ["bob", 3]},
            "to[]")
    refused("share: to over max_share_targets", {"t": "share", "id": 4, "cmid": "s", "video": card(),
                                                 "to": ["u1", "u2", "u3", "u4"]}, "to",
            limits={"max_share_targets": 3})
    refused("share: convs over max_share_targets", {"t": "share", "id": 4, "cmid": "s", "video": card(),
                                                    "convs": ["c1", "c2", "c3", "c4"]}, "convs",
            limits={"max_share_targets": 3})
    refused("share: to and convs together over max_share_targets",
            {"t": "share", "id": 4, "cmid": "s", "video": card(), "to": ["u1", "u2"], "convs": ["c1", "c2"]}, None,
            limits={"max_share_targets": 3})
    refused("share: no video", {"t": "share", "id": 4, "cmid": "s", "to": ["bob"]}, "video")
    refused("share: no cmid", {"t": "share", "id": 4, "video": card(), "to": ["bob"]}, "cmid")
    refused("share: bad card", {"t": "share", "id": 4, "cmid": "s", "video": card(url="x"), "to": ["bob"]},
            "video.url")

    # history
    valid("history: newest page", {"t": "history", "id": 3, "conv": DM}, "History", before=None, limit=50)
    valid("history: before and limit", {"t": "history", "id": 2, "conv": GROUP, "before": 9, "limit": 2},
          "History", before=9, limit=2)
    valid("history: nil limit is the default", {"t": "history", "id": 2, "conv": GROUP, "limit": None},
          "History", limit=50)
    valid("history: limit max_history_limit", {"t": "history", "id": 2, "conv": GROUP, "limit": 100}, "History")
    refused("history: limit 0", {"t": "history", "id": 2, "conv": GROUP, "limit": 0}, "limit")
    refused("history: limit over max_history_limit", {"t": "history", "id": 2, "conv": GROUP, "limit": 101},
            "limit")
    refused("history: before negative", {"t": "history", "id": 2, "conv": GROUP, "before": -1}, "before")
    refused("history: before a float", {"t": "history", "id": 2, "conv": GROUP, "before": 9.5}, "before")
    refused("history: no conv", {"t": "history", "id": 2}, "conv")

    # read, react, unsend
    valid("read", {"t": "read", "id": 5, "conv": GROUP, "seq": 9}, "Read", conv=GROUP, seq=9)
    refused("read: no seq", {"t": "read", "id": 5, "conv": GROUP}, "seq")
    refused("read: seq true", {"t": "read", "id": 5, "conv": GROUP, "seq": True}, "seq")
    valid("react at a moment", {"t": "react", "id": 4, "conv": GROUP, "seq": 5, "emoji": "\U0001F525", "on": True,
                                "at_ms": 42000}, "React", emoji="\U0001F525", on=True, at_ms=42000)
    valid("react: emoji sequence joined by U+200D", {"t": "react", "id": 4, "conv": GROUP, "seq": 5, "emoji": FAMILY,
                                                    "on": False}, "React", emoji=FAMILY, on=False, at_ms=None)
    valid("react: emoji of max_emoji_chars", {"t": "react", "id": 4, "conv": GROUP, "seq": 5,
                                             "emoji": "\U0001F525" * 32, "on": True}, "React")
    refused("react: empty emoji", {"t": "react", "id": 4, "conv": GROUP, "seq": 5, "emoji": "", "on": True}, "emoji")
    refused("react: blank emoji", {"t": "react", "id": 4, "conv": GROUP, "seq": 5, "emoji": "  ", "on": True},
            "emoji")
    refused("react: only a zero width joiner", {"t": "react", "id": 4, "conv": GROUP, "seq": 5, "emoji": "\u200d",
                                                "on": True}, "emoji")
    refused("react: emoji with a control character", {"t": "react", "id": 4, "conv": GROUP, "seq": 5,
                                                      "emoji": "\U0001F525\x07", "on": True}, "emoji")
    refused("react: emoji over max_emoji_chars", {"t": "react", "id": 4, "conv": GROUP, "seq": 5,
                                                  "emoji": "\U0001F525" * 33, "on": True}, "emoji")
    refused("react: no on", {"t": "react", "id": 4, "conv": GROUP, "seq": 5, "emoji": "x"}, "on")
    refused("react: on is 1", {"t": "react", "id": 4, "conv": GROUP, "seq": 5, "emoji": "x", "on": 1}, "on")
    refused("react: at_ms a string", {"t": "react", "id": 4, "conv": GROUP, "seq": 5, "emoji": "x", "on": True,
                                      "at_ms": "42"}, "at_ms")
    valid("unsend", {"t": "unsend", "id": 9, "conv": GROUP, "seq": 5}, "Unsend", seq=5)
    refused("unsend: no conv", {"t": "unsend", "id": 9, "seq": 5}, "conv")

    # groups
    valid("group.create: defaults", {"t": "group.create", "id": 1}, "GroupCreate", members=(), title="")
    valid("group.create: members and title", {"t": "group.create", "id": 1, "members": ["bob", "carol", "bob"],
                                              "title": "Film club"}, "GroupCreate",
          members=("bob", "carol"), title="Film club")
    refused("group.create: members not an array", {"t": "group.create", "id": 1, "members": {"bob": 1}}, "members")
    refused("group.create: empty member id", {"t": "group.create", "id": 1, "members": ["bob", ""]}, "members[]")
    refused("group.create: title over max_title_chars", {"t": "group.create", "id": 1, "title": "t" * 101}, "title")
    valid("group.add: empty members", {"t": "group.add", "id": 1, "conv": GROUP, "members": []}, "GroupAdd",
          members=())
    refused("group.add: no members", {"t": "group.add", "id": 1, "conv": GROUP}, "members")
    valid("group.remove", {"t": "group.remove", "id": 1, "conv": GROUP, "members": ["dave"]}, "GroupRemove")
    refused("group.remove: no conv", {"t": "group.remove", "id": 1, "members": ["dave"]}, "conv")
    valid("group.leave", {"t": "group.leave", "id": 1, "conv": GROUP}, "GroupLeave")
    refused("group.leave: conv empty", {"t": "group.leave", "id": 1, "conv": ""}, "conv")

    # friends, blocks, presence
    for t, cls in (("friend.request", "FriendRequest"), ("friend.accept", "FriendAccept"),
                   ("friend.remove", "FriendRemove"), ("block", "Block"), ("unblock", "Unblock")):
        valid(t, {"t": t, "id": 3, "user": "carol"}, cls, user="carol")
        refused(f"{t}: no user", {"t": t, "id": 3}, "user")
    valid("presence", {"t": "presence", "id": 3, "users": ["bob", "carol", "bob"]}, "PresenceQuery",
          users=("bob", "carol"))
    refused("presence: no users", {"t": "presence", "id": 3}, "users")
    refused("presence: users holds nil", {"t": "presence", "id": 3, "users": [None]}, "users[]")

    # watch, refresh, ping, typing
    valid("watch", {"t": "watch", "id": 6, "conv": GROUP, "video_id": "v42", "pos_ms": 40000, "playing": True},
          "Watch", video_id="v42", pos_ms=40000, playing=True)
    refused("watch: no playing", {"t": "watch", "id": 6, "conv": GROUP, "video_id": "v42", "pos_ms": 0},
            "playing")
    refused("watch: pos_ms a string", {"t": "watch", "id": 6, "conv": GROUP, "video_id": "v42", "pos_ms": "0",
                                       "playing": False}, "pos_ms")
    refused("watch: no video_id", {"t": "watch", "id": 6, "conv": GROUP, "pos_ms": 0, "playing": False}, "video_id")
    valid("refresh", {"t": "refresh", "id": 8, "token": TOKEN}, "Refresh", token=TOKEN)
    refused("refresh: no token", {"t": "refresh", "id": 8}, "token")
    refused("refresh: empty token", {"t": "refresh", "id": 8, "token": ""}, "token")
    valid("ping with id", {"t": "ping", "id": 7}, "Ping", id=7)
    valid("ping without id: a signal", {"t": "ping"}, "Ping", id=None)
    refused("ping with a string id", {"t": "ping", "id": "7"}, "id")
    valid("typing: a signal without id", {"t": "typing", "conv": GROUP}, "Typing", conv=GROUP)
    refused("typing: no conv", {"t": "typing"}, "conv",
            note="the hub drops an invalid typing signal silently; the parser's verdict is still bad_request")

    # valid frames in a non-canonical encoding: decoders must accept them
    valid("non-canonical: str8 key, uint64 id, map16", {"t": "ping", "id": 7}, "Ping", id=7,
          data=bytes.fromhex("de0002") + b"\xd9\x01t" + b"\xa4ping" + b"\xa2id" + b"\xcf" + (7).to_bytes(8, "big"))
    refused("non-canonical: a float32 is still a float", {}, "limit",
            data=b"\x84\xa1t\xa7history\xa2id\x02\xa4conv\xa1c\xa5limit\xca" + bytes.fromhex("3f800000"))


def frames() -> None:
    # Values that are not frames.
    broken("empty message", b"")
    broken("not msgpack: 0xc1", b"\xc1")
    broken("truncated map", b"\x82\xa1t\xa4ping")
    broken("truncated string", b"\x81\xa1t\xa4pi")
    broken("trailing bytes after the map", pack({"t": "ping"}) + b"\xc0")
    broken("two maps in one message", pack({"t": "ping"}) + pack({"t": "ping"}))
    broken("an array", pack(["ping"]))
    broken("a string", pack("ping"))
    broken("an integer", pack(7))
    broken("nil", pack(None))
    broken("map without t", pack({"id": 1}))
    broken("t is an integer", pack({"t": 1, "id": 1}))
    broken("t is nil", pack({"t": None}))
    broken("integer map key", b"\x82\xa1t\xa4ping\x01\x02")
    broken("integer key in a nested map", b"\x82\xa1t\xa4send\xa1x\x81\x01\x02")
    broken("map as a map key", b"\x82\xa1t\xa4ping\x80\x01")
    broken("bin value", b"\x82\xa1t\xa4ping\xa1b\xc4\x03abc")
    broken("empty bin value", b"\x82\xa1t\xa4ping\xa1b\xc4\x00")
    broken("fixext1 value", b"\x82\xa1t\xa4ping\xa1e\xd4\x05\x00")
    broken("ext8 of length 0", b"\x82\xa1t\xa4ping\xa1e\xc7\x00\x05")
    broken("timestamp ext (type -1)", b"\x82\xa1t\xa4ping\xa1e\xd6\xff\x00\x00\x00\x00")
    broken("invalid UTF-8 byte", b"\x81\xa1t\xa2p\xff")
    broken("overlong UTF-8", b"\x81\xa1t\xa3p\xc0\xaf")
    broken("UTF-8 encoded surrogate", b"\x81\xa1t\xa4p\xed\xa0\x80")
    broken("UTF-8 above U+10FFFF", b"\x81\xa1t\xa5p\xf4\x90\x80\x80")
    broken("invalid UTF-8 in a key", b"\x82\xa1t\xa4ping\xa1\xff\x01")

    # Depth: the frame's own map is level 1.
    nested8 = b"\x82\xa1t\xa4ping\xa1v" + b"\x91" * 6 + b"\x90"  # map + 7 arrays: 8 levels
    valid("depth: exactly max_depth", {}, "Ping", data=nested8)
    broken("depth: max_depth + 1", b"\x82\xa1t\xa4ping\xa1v" + b"\x91" * 7 + b"\x90")
    broken("depth: max_depth + 1 through maps", b"\x82\xa1t\xa4ping\xa1v" + b"\x81\xa1a" * 7 + b"\x80")
    broken("depth: far too deep", b"\x82\xa1t\xa4ping\xa1v" + b"\x91" * 2000 + b"\xc0")

    # Lengths, with small limits to keep the vectors short.
    valid("string of exactly max_str_len bytes", {}, "Send", limits={"max_str_len": 16},
          data=pack({"t": "send", "id": 1, "to": "bob", "cmid": "m", "text": "\u00e9" * 8}))
    broken("string over max_str_len bytes", pack({"t": "send", "id": 1, "to": "bob", "cmid": "m",
                                                  "text": "\u00e9" * 9}), limits={"max_str_len": 16})
    broken("key over max_str_len bytes", pack({"t": "ping", "k" * 17: 1}), limits={"max_str_len": 16})
    valid("array of exactly max_array_len", {}, "PresenceQuery", limits={"max_array_len": 4},
          data=pack({"t": "presence", "id": 1, "users": ["a", "b", "c", "d"]}))
    broken("array over max_array_len", pack({"t": "presence", "id": 1, "users": ["a", "b", "c", "d", "e"]}),
           limits={"max_array_len": 4})
    valid("map of exactly max_map_len", {}, "Hello", limits={"max_map_len": 5},
          data=pack({"t": "hello", "id": 1, "v": 1, "token": TOKEN, "resume": {"a": 1, "b": 2}}))
    broken("map over max_map_len", pack({"t": "hello", "id": 1, "v": 1, "token": TOKEN, "resume": {},
                                         "device": "d"}), limits={"max_map_len": 5})
    frame = pack({"t": "ping", "id": 1, "pad": "x" * 20})
    valid("frame of exactly max_frame_bytes", {}, "Ping", limits={"max_frame_bytes": len(frame)}, data=frame)
    broken("frame over max_frame_bytes", frame, 1009, limits={"max_frame_bytes": len(frame) - 1})


def events() -> None:
    limits = {**DEFAULT_LIMITS.to_wire(), "max_str_len": 16000, "resume_cap": 3, "resume_total_max": 2000,
              "hello_timeout_ms": 10000}
    group_entry = {"conv": GROUP, "kind": "group", "last_seq": 8, "read_seq": 0, "unread": 8, "title": "Film club",
                   "members": ["alice", "bob", "carol"], "owner": "alice",
                   "watch": {"video_id": "v42", "pos_ms": 40000, "playing": True, "by": "carol", "ts": TS}}
    event("welcome", {"t": "ok", "id": 1, "user": "carol", "session": "s41", "server_time": TS, "limits": limits,
                      "convs": [group_entry, {"conv": DM, "kind": "dm", "last_seq": 1, "read_seq": 0, "unread": 1,
                                              "peer": "alice"}],
                      "requests": [{"user": "dave", "direction": "in"}],
                      "friends": [{"user": "alice", "online": True, "last_seen": None},
                                  {"user": "bob", "online": False, "last_seen": TS - 5000}]})
    event("ok: send result", {"t": "ok", "id": 2, "conv": DM, "seq": 1, "ts": TS})
    event("ok: empty result", {"t": "ok", "id": 7})
    event("ok: share results", {"t": "ok", "id": 4, "results": [
        {"to": "bob", "conv": DM, "seq": 2, "ts": TS}, {"to": "carol", "error": "forbidden"},
        {"to": "erin", "conv": "dm:5609c69f8f8a344fe47ba94c", "error": "unavailable"},
        {"conv": GROUP, "seq": 5, "ts": TS}, {"conv": "g:other", "error": "forbidden"}]})
    event("ok: history page", {"t": "ok", "id": 2, "messages": [
        {"conv": GROUP, "seq": 5, "from": "alice", "ts": TS, "kind": "video", "cmid": "a-0002",
         "text": "watch the jump", "video": FULL_CARD,
         "reactions": [{"emoji": "\U0001F525", "count": 2, "me": True, "moments": [12000, 42000]},
                       {"emoji": FAMILY, "count": 1, "me": False}]},
        {"conv": GROUP, "seq": 6, "from": "bob", "ts": TS, "kind": "text", "cmid": "b-0310",
         "text": "that jump!", "reply": {"seq": 5, "at_ms": 42000}, "reactions": []},
        {"conv": GROUP, "seq": 7, "from": "alice", "ts": TS, "kind": "text", "cmid": "a-3", "unsent": True,
         "reactions": []},
        {"conv": GROUP, "seq": 8, "from": "mallory", "ts": TS, "kind": "text", "cmid": "m-1", "hidden": True,
         "reactions": []}]})
    event("ok: presence answer", {"t": "ok", "id": 3, "users": [{"user": "bob", "online": True, "last_seen": TS},
                                                               {"user": "zed", "online": False,
                                                                "last_seen": None}]})
    event("ok: refresh", {"t": "ok", "id": 8, "expires_at": TS + 86_400_000})
    event("ok: ping", {"t": "ok", "id": 7, "server_time": TS})
    event("error with id", {"t": "error", "id": 10, "code": "forbidden",
                            "message": "no such conversation, or you are not a member"})
    event("error without id", {"t": "error", "code": "bad_request",
                               "message": "a request needs an unsigned integer 'id'"})
    event("msg: text", {"t": "msg", "conv": DM, "seq": 1, "from": "alice", "ts": TS, "kind": "text",
                        "cmid": "a-0001", "text": "hi bob"})
    event("msg: video card with a reply", {"t": "msg", "conv": GROUP, "seq": 9, "from": "bob", "ts": TS,
                                           "kind": "video", "cmid": "b-9", "video": FULL_CARD,
                                           "reply": {"seq": 6}})
    event("msg: tombstone", {"t": "msg", "conv": GROUP, "seq": 7, "from": "alice", "ts": TS, "kind": "text",
                             "cmid": "a-3", "unsent": True})
    event("msg: hidden stub", {"t": "msg", "conv": GROUP, "seq": 8, "from": "mallory", "ts": TS,
                               "kind": "video", "cmid": "m-1", "hidden": True})
    event("gap", {"t": "gap", "conv": GROUP, "from_seq": 7, "to_seq": 8})
    event("conv: dm", {"t": "conv", "conv": DM, "kind": "dm", "last_seq": 0, "peer": "bob"})
    event("conv: group", {"t": "conv", "conv": GROUP, "kind": "group", "title": "", "members": ["alice", "bob"],
                          "owner": "alice", "last_seq": 4})
    event("conv: removed", {"t": "conv", "conv": GROUP, "kind": "group", "removed": True})
    event("friend: requested in", {"t": "friend", "user": "dave", "state": "requested", "direction": "in"})
    event("friend: accepted", {"t": "friend", "user": "dave", "state": "accepted"})
    event("friend: removed", {"t": "friend", "user": "dave", "state": "removed"})
    event("presence: online", {"t": "presence", "user": "dave", "online": True, "last_seen": None})
    event("presence: offline", {"t": "presence", "user": "dave", "online": False, "last_seen": TS})
    event("typing", {"t": "typing", "conv": GROUP, "user": "carol"})
    event("read", {"t": "read", "conv": GROUP, "user": "carol", "seq": 9})
    event("reaction at a moment", {"t": "reaction", "conv": GROUP, "seq": 5, "user": "carol",
                                   "emoji": "\U0001F525", "on": True, "at_ms": 42000})
    event("reaction taken back", {"t": "reaction", "conv": GROUP, "seq": 5, "user": "carol", "emoji": FAMILY,
                                  "on": False})
    event("unsent", {"t": "unsent", "conv": GROUP, "seq": 5})
    event("watch", {"t": "watch", "conv": GROUP, "by": "carol", "video_id": "v42", "pos_ms": 40000,
                    "playing": True, "ts": TS})
    event("unknown event type with unknown keys", {"t": "sparkle", "conv": GROUP, "level": 3,
                                                   "extra": {"nested": [1, 2.5, None]}},
          note="a client ignores event types and keys it does not know")


def build() -> dict[str, Any]:
    VECTORS.clear()
    NAMES.clear()
    requests()
    frames()
    events()
    return {
        "description": "Clipwire protocol v1 test vectors (protocol/SPEC.md). Generated by "
                       "tests/protocol/make_vectors.py; checked by tests/protocol/test_vectors.py and "
                       "clients/js/test/vectors.test.ts. See the generator's docstring for the format.",
        "version": 1,
        "limits": DEFAULT_LIMITS.to_wire(),
        "vectors": VECTORS,
    }


def render(data: dict[str, Any]) -> str:
    """One vector per line, so that a diff shows which vectors changed."""
    head = {k: v for k, v in data.items() if k != "vectors"}
    lines = [json.dumps(v, ensure_ascii=False, sort_keys=False) for v in data["vectors"]]
    body = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
    return body + ',\n "vectors": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"


def main(argv: list[str]) -> int:
    text = render(build())
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run {Path(__file__).relative_to(ROOT)}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(VECTORS)} vectors to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
