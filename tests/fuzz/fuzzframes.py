"""Frames for fuzzing: hypothesis strategies of valid requests (with the typed request
each must parse into), of arbitrary values and bytes, and a seeded random generator of
hostile frames for a live hub.

Strategies stay within ``DEFAULT_LIMITS`` unless they say otherwise, so a valid frame
is one the hub must accept; the sizes are kept moderate (a few boundary values
included) so that a frame stays under ``max_frame_bytes``.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from typing import Any

import msgpack  # type: ignore[import-untyped]
from hypothesis import strategies as st

from clipwire.protocol import DEFAULT_LIMITS, ErrorCode, FrameError, Limits, RequestError, decode
from clipwire.protocol import frames as f
from clipwire.protocol.frames import MAX_UINT

L = DEFAULT_LIMITS
REQUEST_TYPES = tuple(sorted(f.known_types()))
REQUEST_CLASSES = (f.Send, f.Share, f.History, f.Read, f.React, f.Unsend, f.GroupCreate, f.GroupAdd,
                   f.GroupRemove, f.GroupLeave, f.FriendRequest, f.FriendAccept, f.FriendRemove,
                   f.Block, f.Unblock, f.PresenceQuery, f.Watch, f.Refresh, f.Ping, f.Typing, f.Hello)
# Every field name any request reads, for frames of a known type with random fields.
FIELD_NAMES = ("id", "v", "token", "device", "resume", "to", "conv", "convs", "cmid", "kind", "text",
               "video", "reply", "before", "limit", "seq", "emoji", "on", "at_ms", "members", "title",
               "user", "users", "video_id", "pos_ms", "playing")

Example = tuple[dict[str, Any], f.Request]

# -- scalar values ---------------------------------------------------------------------

# Printable as str.isprintable() means it: no C* or Z* category, but the ASCII space.
_VISIBLE = st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn",
                                                            "Zl", "Zp", "Zs"))
_PRINTABLE = _VISIBLE | st.just(" ")

uints = st.integers(0, MAX_UINT)
small_uints = st.integers(0, 1000)
ids = st.one_of(
    st.text(_PRINTABLE, min_size=1, max_size=12),
    st.integers(1, L.max_id_chars).map(lambda n: "i" * n),  # up to the bound exactly
)


def texts(max_chars: int, *, min_size: int = 0) -> st.SearchStrategy[str]:
    """Any string (control characters included) of ``min_size`` to ``max_chars`` code points."""
    return st.one_of(
        st.text(min_size=min_size, max_size=min(max_chars, 40)),
        st.sampled_from(sorted({max(min_size, 1), max_chars - 1, max_chars})).map(lambda n: "é" * n),
    )


_hosts = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z]{2,6}){0,2}(:[0-9]{1,4})?", fullmatch=True)
_paths = st.text(string.ascii_letters + string.digits + "-_./?=&%", max_size=40)
urls = st.builds(lambda scheme, host, path: f"{scheme}://{host}/{path}",
                 st.sampled_from(["http", "https"]), _hosts, _paths)
emoji = st.one_of(
    st.sampled_from(["🔥", "👍", "❤️", "👨\u200d👩\u200d👧", "🏳️\u200d🌈", "ok", "x"]),
    st.text(_VISIBLE, min_size=1, max_size=L.max_emoji_chars),
)
# Unknown keys, which every request ignores.
extras = st.dictionaries(st.text(max_size=8).map(lambda k: f"x_{k}"),
                         st.one_of(st.none(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=8)),
                         max_size=2)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Absent (None) or a value; the caller also sends None as an explicit nil."""
    return st.one_of(st.none(), strategy)


def id_lists(max_items: int = 6) -> st.SearchStrategy[list[str]]:
    return st.lists(ids, max_size=max_items)


# -- valid requests and what they parse into -----------------------------------------------


@st.composite
def video_cards(draw: st.DrawFn) -> tuple[dict[str, Any], f.VideoCard]:
    card = f.VideoCard(
        id=draw(ids), url=draw(urls), thumb=draw(maybe(urls)), caption=draw(maybe(texts(L.max_text_chars))),
        author=draw(maybe(ids)), duration_ms=draw(maybe(uints)), at_ms=None,
    )
    at_ms = draw(maybe(st.integers(0, card.duration_ms if card.duration_ms is not None else MAX_UINT)))
    card = f.VideoCard(card.id, card.url, card.thumb, card.caption, card.author, card.duration_ms, at_ms)
    wire: dict[str, Any] = {"id": card.id, "url": card.url}
    for name in ("thumb", "caption", "author", "duration_ms", "at_ms"):
        value = getattr(card, name)
        if value is not None or draw(st.booleans()):  # nil is the same as absent
            wire[name] = value
    wire.update(draw(extras))  # unknown keys are dropped
    return wire, card


def _put(draw: st.DrawFn, frame: dict[str, Any], name: str, value: Any) -> None:
    """Set an optional field: absent, nil, or its value."""
    if value is not None:
        frame[name] = value
    elif draw(st.booleans()):
        frame[name] = None


def _dedup(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


@st.composite
def send_requests(draw: st.DrawFn, rid: int) -> Example:
    frame: dict[str, Any] = {"t": "send", "id": rid, "cmid": draw(ids)}
    target = draw(ids)
    by_to = draw(st.booleans())
    frame["to" if by_to else "conv"] = target
    reply = draw(maybe(st.builds(f.Reply, st.integers(1, MAX_UINT), maybe(uints))))
    if reply is not None:
        frame["reply"] = reply.to_wire() if reply.at_ms is not None or draw(st.booleans()) else \
            {"seq": reply.seq, "at_ms": None}
    if draw(st.booleans()):
        text = draw(texts(L.max_text_chars, min_size=1))
        frame["text"] = text
        _put(draw, frame, "kind", draw(st.sampled_from([None, "text"])))
        request = f.Send(rid, frame["cmid"], target if by_to else None, None if by_to else target,
                         "text", text, None, reply)
    else:
        wire, card = draw(video_cards())
        frame["kind"], frame["video"] = "video", wire
        text = draw(maybe(texts(L.max_text_chars)))
        _put(draw, frame, "text", text)
        request = f.Send(rid, frame["cmid"], target if by_to else None, None if by_to else target,
                         "video", text or None, card, reply)
    return frame, request


@st.composite
def share_requests(draw: st.DrawFn, rid: int) -> Example:
    to, convs = draw(id_lists()), draw(id_lists())
    if not to and not convs:
        to = [draw(ids)]
    wire, card = draw(video_cards())
    text = draw(maybe(texts(L.max_text_chars)))
    frame: dict[str, Any] = {"t": "share", "id": rid, "cmid": draw(ids), "video": wire}
    for name, items in (("to", to), ("convs", convs)):
        if items or draw(st.booleans()):
            frame[name] = items
    _put(draw, frame, "text", text)
    return frame, f.Share(rid, frame["cmid"], card, _dedup(to), _dedup(convs), text or None)


@st.composite
def valid_requests(draw: st.DrawFn, types: tuple[str, ...] = REQUEST_TYPES) -> Example:
    """One valid request frame of any of ``types``, and the typed request it must parse into."""
    t = draw(st.sampled_from(types))
    rid = draw(uints)
    frame: dict[str, Any]
    request: f.Request
    if t == "send":
        frame, request = draw(send_requests(rid))
    elif t == "share":
        frame, request = draw(share_requests(rid))
    elif t == "history":
        conv, before, limit = draw(ids), draw(maybe(uints)), draw(maybe(st.integers(1, L.max_history_limit)))
        frame = {"t": t, "id": rid, "conv": conv}
        _put(draw, frame, "before", before)
        _put(draw, frame, "limit", limit)
        request = f.History(rid, conv, before, 50 if limit is None else limit)
    elif t in ("read", "unsend"):
        conv, seq = draw(ids), draw(uints)
        frame = {"t": t, "id": rid, "conv": conv, "seq": seq}
        request = (f.Read if t == "read" else f.Unsend)(rid, conv, seq)
    elif t == "react":
        conv, seq, e, on, at_ms = draw(ids), draw(uints), draw(emoji), draw(st.booleans()), draw(maybe(uints))
        frame = {"t": t, "id": rid, "conv": conv, "seq": seq, "emoji": e, "on": on}
        _put(draw, frame, "at_ms", at_ms)
        request = f.React(rid, conv, seq, e, on, at_ms)
    elif t == "group.create":
        members, title = draw(maybe(id_lists())), draw(maybe(texts(L.max_title_chars)))
        frame = {"t": t, "id": rid}
        _put(draw, frame, "members", members)
        _put(draw, frame, "title", title)
        request = f.GroupCreate(rid, _dedup(members or []), title or "")
    elif t in ("group.add", "group.remove"):
        conv, members = draw(ids), draw(id_lists())
        frame = {"t": t, "id": rid, "conv": conv, "members": members}
        request = (f.GroupAdd if t == "group.add" else f.GroupRemove)(rid, conv, _dedup(members))
    elif t == "group.leave":
        conv = draw(ids)
        frame, request = {"t": t, "id": rid, "conv": conv}, f.GroupLeave(rid, conv)
    elif t in ("friend.request", "friend.accept", "friend.remove", "block", "unblock"):
        user = draw(ids)
        cls: Callable[[int, str], f.Request] = {
            "friend.request": f.FriendRequest, "friend.accept": f.FriendAccept,
            "friend.remove": f.FriendRemove, "block": f.Block, "unblock": f.Unblock}[t]
        frame, request = {"t": t, "id": rid, "user": user}, cls(rid, user)
    elif t == "presence":
        users = draw(id_lists())
        frame, request = {"t": t, "id": rid, "users": users}, f.PresenceQuery(rid, _dedup(users))
    elif t == "watch":
        conv, video_id, pos, playing = draw(ids), draw(ids), draw(uints), draw(st.booleans())
        frame = {"t": t, "id": rid, "conv": conv, "video_id": video_id, "pos_ms": pos, "playing": playing}
        request = f.Watch(rid, conv, video_id, pos, playing)
    elif t == "refresh":
        token = draw(texts(200, min_size=1))
        frame, request = {"t": t, "id": rid, "token": token}, f.Refresh(rid, token)
    elif t == "ping":
        ping_id = draw(maybe(uints))
        frame = {"t": t}
        _put(draw, frame, "id", ping_id)
        request = f.Ping(ping_id)
    elif t == "typing":
        conv = draw(ids)
        frame, request = {"t": t, "conv": conv}, f.Typing(conv)
    elif t == "hello":
        v, token, device = draw(uints), draw(texts(200, min_size=1)), draw(maybe(ids))
        resume = draw(st.dictionaries(ids, uints, max_size=5))
        frame = {"t": t, "id": rid, "v": v, "token": token}
        _put(draw, frame, "device", device)
        _put(draw, frame, "resume", resume or None)
        request = f.Hello(rid, v, token, device, resume)
    else:  # pragma: no cover - a new request type needs a strategy here
        raise AssertionError(f"no strategy for request type {t!r}")
    frame.update(draw(extras))
    return frame, request


# -- arbitrary values ------------------------------------------------------------------------

_keys = st.one_of(st.text(max_size=6), st.integers(-5, 5), st.binary(max_size=3), st.none(), st.booleans())
_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(),
    st.text(max_size=20), st.binary(max_size=8),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4)),
)
msgpack_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=20,
)
# Frames of a known type whose fields hold anything at all.
random_field_frames = st.builds(
    lambda t, fields: {"t": t, **fields},
    st.sampled_from((*REQUEST_TYPES, "unknown.type", "")),
    st.dictionaries(st.sampled_from(FIELD_NAMES), msgpack_values, max_size=6),
)


def pack(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def check_typed(data: bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    """Decode and validate ``data`` as the hub does; only typed errors may come out.

    Returns what happened: "frame" (FrameError), "request" (RequestError) or "ok".
    Any other exception propagates, and fails the calling test.
    """
    try:
        frame = decode(data, limits)
    except FrameError as exc:
        assert exc.close_code in (4003, 1009), exc.close_code
        assert (exc.close_code == 1009) == (len(data) > limits.max_frame_bytes), (exc, len(data))
        assert isinstance(exc.reason, str) and exc.reason
        return "frame"
    assert isinstance(frame, dict) and isinstance(frame.get("t"), str)
    return check_request(frame, limits)


def check_request(frame: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> str:
    try:
        request = f.parse_request(frame, limits)
    except RequestError as exc:
        assert isinstance(exc.code, ErrorCode)
        assert isinstance(exc.message, str) and exc.message
        return "request"
    assert isinstance(request, REQUEST_CLASSES), request
    return "ok"


# -- hostile frames for a live hub, from a seeded random.Random -------------------------------

INTERESTING: tuple[Any, ...] = (
    None, True, False, 0, 1, -1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 0.0, 1.0, -0.0,
    float("inf"), float("nan"), "", " ", "\x00", "a\x00b", "\u200d", "🔥", "é" * 129, "x" * 4001,
    "\ud7ff", "‮rtl", b"", b"\x00", [], {}, [None], {"": None}, {"id": 1}, {"seq": -1},
    msgpack.ExtType(1, b"x"),
)


class HostileFrames:
    """Random and mutated frames: most of them look like requests, many are broken."""

    def __init__(self, rng: random.Random, users: list[str]) -> None:
        self.rng = rng
        self.users = users
        self.convs: list[str] = []  # learned from the hub's answers, so some requests are valid
        self.seqs = [1, 2, 3]
        self.next_id = 1

    def learn(self, frame: dict[str, Any]) -> None:
        conv = frame.get("conv")
        if isinstance(conv, str) and conv not in self.convs and len(self.convs) < 50:
            self.convs.append(conv)
        seq = frame.get("seq")
        if isinstance(seq, int) and len(self.seqs) < 50:
            self.seqs.append(seq)

    # -- values -----------------------------------------------------------------------

    def value(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if r < 0.4 or depth > 3:
            return self.rng.choice(INTERESTING)
        if r < 0.55:
            return self.rng.randint(-(2**63), 2**64 - 1)
        if r < 0.7:
            return "".join(chr(self.rng.choice([self.rng.randint(0, 0x7F), self.rng.randint(0x80, 0xD7FF),
                                                self.rng.randint(0xE000, 0x10FFFF)]))
                           for _ in range(self.rng.randint(0, 20)))
        if r < 0.85:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {self.rng.choice(FIELD_NAMES): self.value(depth + 1) for _ in range(self.rng.randint(0, 4))}

    def ident(self) -> Any:
        pool = self.convs + self.users if self.rng.random() < 0.5 else self.users
        return self.rng.choice(pool) if pool and self.rng.random() < 0.8 else self.value()

    def card(self) -> dict[str, Any]:
        card: dict[str, Any] = {"id": f"v{self.rng.randint(1, 9)}", "url": "https://videos.example/v"}
        if self.rng.random() < 0.5:
            card.update(duration_ms=self.rng.choice([0, 1000, 60_000]),
                        at_ms=self.rng.choice([0, 500, 10**9]))
        return card

    def request(self) -> dict[str, Any]:
        """A request of a random type with plausible fields, some of them replaced by junk."""
        rng = self.rng
        t = rng.choice(REQUEST_TYPES) if rng.random() < 0.95 else rng.choice(["nope", "", "send ", "SEND"])
        rid = self.next_id
        self.next_id += 1
        frame: dict[str, Any] = {"t": t, "id": rid}
        plausible: dict[str, Callable[[], Any]] = {
            "conv": lambda: rng.choice(self.convs) if self.convs else self.ident(),
            "to": lambda: rng.choice(self.users),
            "user": lambda: rng.choice(self.users),
            "cmid": lambda: f"c{rng.randint(1, 50)}",
            "text": lambda: rng.choice(["hi", "", "x" * rng.randint(1, 4000), "a\x00b", "🔥" * 10]),
            "kind": lambda: rng.choice(["text", "video", "audio", None]),
            "video": self.card,
            "reply": lambda: {"seq": rng.choice(self.seqs), "at_ms": rng.choice([None, 0, 100])},
            "seq": lambda: rng.choice(self.seqs),
            "before": lambda: rng.choice([None, 0, 1, 5, 2**63 - 1]),
            "limit": lambda: rng.choice([None, 1, 50, 100]),
            "emoji": lambda: rng.choice(["🔥", "👍", "x"]),
            "on": lambda: rng.random() < 0.7,
            "at_ms": lambda: rng.choice([None, 0, 500, 2**63 - 1]),
            "members": lambda: rng.sample(self.users, rng.randint(0, min(5, len(self.users)))),
            "users": lambda: rng.sample(self.users, rng.randint(0, min(5, len(self.users)))),
            "convs": lambda: self.convs[: rng.randint(0, 3)],
            "title": lambda: rng.choice(["", "club", "t" * 100, "t\x00"]),
            "video_id": lambda: f"v{rng.randint(1, 9)}",
            "pos_ms": lambda: rng.randint(0, 10**6),
            "playing": lambda: rng.random() < 0.5,
            "token": lambda: rng.choice(["x", "eyJhbGciOiJub25lIn0.e30.", "a.b.c"]),
            "v": lambda: rng.choice([1, 2, 0]),
            "resume": lambda: {c: rng.randint(0, 5) for c in self.convs[:3]},
            "device": lambda: "fuzz",
        }
        for name in rng.sample(FIELD_NAMES[1:], rng.randint(1, 7)):
            frame[name] = plausible[name]() if rng.random() < 0.8 else self.value()
        if rng.random() < 0.1:
            frame["id"] = self.value()
        if rng.random() < 0.05:
            del frame["id"]
        return frame

    # -- whole frames ---------------------------------------------------------------------

    def frame(self, max_frame_bytes: int, killers: float = 0.3) -> bytes | str:
        """One WebSocket message: a request (plausible, or with random fields), or with
        probability ``killers`` one that the hub must answer by closing the connection
        (mutated bytes usually are such a frame; so is everything after them here)."""
        rng = self.rng
        if rng.random() >= killers:
            if rng.random() < 0.85:
                return pack(self.request())
            return pack({"t": rng.choice(REQUEST_TYPES), **{
                rng.choice(FIELD_NAMES): self.value() for _ in range(rng.randint(0, 5))}})
        r = rng.random()
        if r < 0.45:
            return self.mutate(pack(self.request()))
        if r < 0.55:
            return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        if r < 0.62:
            return rng.choice(["hello", '{"t": "send"}', "", "\x00" * 10])  # a text frame
        if r < 0.70:  # too deep
            depth = rng.choice([9, 20, 1000, 100_000])
            return b"\x82\xa1t\xa4send\xa1x" + b"\x91" * depth + b"\xc0"  # {"t": "send", "x": [[[...]]]}
        if r < 0.77:  # too wide
            return pack({"t": "group.create", "id": 1, "members": ["u"] * rng.choice([1025, 5000])})
        if r < 0.84:  # over the frame limit
            big = "x" * (max_frame_bytes + 10)
            return pack({"t": "send", "id": 1, "conv": "c", "cmid": "x", "text": big})
        if r < 0.92:  # a non-string key, a bin, an ext, trailing bytes
            return rng.choice([
                pack({1: "x", "t": "ping"}), pack({"t": "ping", "b": b"\x00"}),
                pack({"t": "ping", "e": msgpack.ExtType(5, b"")}), pack({"t": "ping"}) + b"\xc0",
            ])
        return pack(self.value())

    def mutate(self, data: bytes) -> bytes:
        rng = self.rng
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            i = rng.randrange(len(buf) + 1)
            if op < 0.35 and buf:
                buf[min(i, len(buf) - 1)] ^= 1 << rng.randrange(8)
            elif op < 0.55:
                del buf[i:]
            elif op < 0.75:
                buf[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
            elif op < 0.9 and buf:
                j = rng.randrange(len(buf))
                del buf[min(i, j):max(i, j)]
            else:
                # Huge announced lengths (map, array, str), a reserved byte, a short string.
                buf[i:i] = rng.choice([b"\xdf\xff\xff\xff\xff", b"\xdd\x7f\xff\xff\xff",
                                       b"\xdb\xff\xff\xff\xff", b"\xc1", b"\xd9\x05abc"])
        return bytes(buf)
