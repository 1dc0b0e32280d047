"""Client requests as typed, frozen values, and the validation that makes them.

``parse_request`` turns a decoded frame into one of the request classes below
or raises :class:`RequestError` with a message naming the offending field, so a
handler in the hub only ever sees well-typed, bounded values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from .codec import DEFAULT_LIMITS, Limits
from .errors import ErrorCode, RequestError

__all__ = [
    "PROTOCOL_VERSION",
    "SIGNALS",
    "Block",
    "FriendAccept",
    "FriendRemove",
    "FriendRequest",
    "GroupAdd",
    "GroupCreate",
    "GroupLeave",
    "GroupRemove",
    "Hello",
    "History",
    "Ping",
    "PresenceQuery",
    "React",
    "Read",
    "Refresh",
    "Reply",
    "Request",
    "Send",
    "Share",
    "Typing",
    "Unblock",
    "Unsend",
    "VideoCard",
    "Watch",
    "parse_hello",
    "parse_request",
    "parse_video_card",
    "request_id",
]

PROTOCOL_VERSION = 1
MAX_UINT = 2**63 - 1
MessageKind = Literal["text", "video"]


@dataclass(frozen=True, slots=True)
class VideoCard:
    """A card for one of the application's videos, shared into a conversation."""

    id: str
    url: str
    thumb: str | None = None
    caption: str | None = None
    author: str | None = None
    duration_ms: int | None = None
    at_ms: int | None = None
    #: Set by the hub only (never parsed from a client): ``False`` when the card
    #: resolver could not confirm the card and the hub delivers the sender's as sent.
    verified: bool | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "url": self.url}
        for name in ("thumb", "caption", "author", "duration_ms", "at_ms", "verified"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply to message ``seq``, optionally to a moment ``at_ms`` of its video."""

    seq: int
    at_ms: int | None = None

    def to_wire(self) -> dict[str, int]:
        return {"seq": self.seq} if self.at_ms is None else {"seq": self.seq, "at_ms": self.at_ms}


@dataclass(frozen=True, slots=True)
class Hello:
    id: int
    v: int
    token: str
    device: str | None
    resume: dict[str, int]


@dataclass(frozen=True, slots=True)
class Send:
    id: int
    cmid: str
    to: str | None
    conv: str | None
    kind: MessageKind
    text: str | None
    video: VideoCard | None
    reply: Reply | None


@dataclass(frozen=True, slots=True)
class Share:
    id: int
    cmid: str
    video: VideoCard
    to: tuple[str, ...]
    convs: tuple[str, ...]
    text: str | None


@dataclass(frozen=True, slots=True)
class History:
    id: int
    conv: str
    before: int | None
    limit: int


@dataclass(frozen=True, slots=True)
class Read:
    id: int
    conv: str
    seq: int


@dataclass(frozen=True, slots=True)
class React:
    id: int
    conv: str
    seq: int
    emoji: str
    on: bool
    at_ms: int | None


@dataclass(frozen=True, slots=True)
class Unsend:
    id: int
    conv: str
    seq: int


@dataclass(frozen=True, slots=True)
class GroupCreate:
    id: int
    members: tuple[str, ...]
    title: str


@dataclass(frozen=True, slots=True)
class GroupAdd:
    id: int
    conv: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupRemove:
    id: int
    conv: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupLeave:
    id: int
    conv: str


@dataclass(frozen=True, slots=True)
class FriendRequest:
    id: int
    user: str


@dataclass(frozen=True, slots=True)
class FriendAccept:
    id: int
    user: str


@dataclass(frozen=True, slots=True)
class FriendRemove:
    id: int
    user: str


@dataclass(frozen=True, slots=True)
class Block:
    id: int
    user: str


@dataclass(frozen=True, slots=True)
class Unblock:
    id: int
    user: str


@dataclass(frozen=True, slots=True)
class PresenceQuery:
    id: int
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Watch:
    id: int
    conv: str
    video_id: str
    pos_ms: int
    playing: bool


@dataclass(frozen=True, slots=True)
class Refresh:
    id: int
    token: str


@dataclass(frozen=True, slots=True)
class Ping:
    id: int | None


@dataclass(frozen=True, slots=True)
class Typing:
    conv: str


Request = (
    Send | Share | History | Read | React | Unsend | GroupCreate | GroupAdd | GroupRemove
    | GroupLeave | FriendRequest | FriendAccept | FriendRemove | Block | Unblock
    | PresenceQuery | Watch | Refresh | Ping | Typing | Hello
)

SIGNALS = frozenset({"typing"})


class _Fields:
    """Reads typed fields out of one frame, naming the field in every error."""

    __slots__ = ("frame", "limits")

    def __init__(self, frame: dict[str, Any], limits: Limits) -> None:
        self.frame = frame
        self.limits = limits

    def ident(self, name: str) -> str:
        value = self.frame.get(name)
        if value is None:
            raise RequestError.bad(f"missing '{name}'")
        return _ident(value, name, self.limits)

    def opt_ident(self, name: str) -> str | None:
        value = self.frame.get(name)
        return None if value is None else _ident(value, name, self.limits)

    def idents(self, name: str, *, required: bool = True, max_items: int | None = None) -> tuple[str, ...]:
        value = self.frame.get(name)
        if value is None:
            if required:
                raise RequestError.bad(f"missing '{name}'")
            return ()
        if not isinstance(value, list):
            raise RequestError.bad(f"'{name}' must be an array of strings")
        bound = self.limits.max_array_len if max_items is None else max_items
        if len(value) > bound:
            raise RequestError.bad(f"'{name}' has more than {bound} entries")
        # dict.fromkeys keeps the order and drops repeats.
        return tuple(dict.fromkeys(_ident(v, f"{name}[]", self.limits) for v in value))

    def text(self, name: str, max_chars: int, *, required: bool = False) -> str | None:
        value = self.frame.get(name)
        if value is None:
            if required:
                raise RequestError.bad(f"missing '{name}'")
            return None
        return _text(value, name, max_chars)

    def uint(self, name: str) -> int:
        value = self.frame.get(name)
        if value is None:
            raise RequestError.bad(f"missing '{name}'")
        return _uint(value, name)

    def opt_uint(self, name: str) -> int | None:
        value = self.frame.get(name)
        return None if value is None else _uint(value, name)

    def boolean(self, name: str) -> bool:
        value = self.frame.get(name)
        if not isinstance(value, bool):
            raise RequestError.bad(f"'{name}' must be true or false")
        return value


def _ident(value: Any, name: str, limits: Limits) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limits.max_id_chars:
        raise RequestError.bad(f"'{name}' must be a string of 1 to {limits.max_id_chars} characters")
    if not value.isprintable():
        raise RequestError.bad(f"'{name}' must not contain control characters")
    return value


def _text(value: Any, name: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise RequestError.bad(f"'{name}' must be a string")
    if len(value) > max_chars:
        raise RequestError.bad(f"'{name}' is longer than {max_chars} characters")
    return value


def _uint(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UINT:
        raise RequestError.bad(f"'{name}' must be an unsigned integer")
    return value


def _url(value: Any, name: str, limits: Limits) -> str:
    url = _text(value, name, limits.max_url_chars)
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1", "http://[zz]/", a netloc that NFKC turns into "a/c"
        raise RequestError.bad(f"'{name}' must be an http or https URL") from None
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise RequestError.bad(f"'{name}' must be an http or https URL")
    # What shows one host and opens another: credentials ("https://bank.example@evil.example"),
    # backslashes (some parsers read "\\" as "/"), and tabs, controls or bidi marks (not
    # printable) that parsers strip or that reorder the text a user reads.
    if "@" in parts.netloc or "\\" in url or not url.isprintable():
        raise RequestError.bad(f"'{name}' must be a plain http or https URL: no credentials, "
                               "backslashes or invisible characters")
    return url


def request_id(frame: dict[str, Any]) -> int | None:
    """The frame's ``id`` if it is a valid one, so even a refusal can be matched."""
    value = frame.get("id")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_UINT:
        return value
    return None


def parse_video_card(value: Any, limits: Limits = DEFAULT_LIMITS, name: str = "video") -> VideoCard:
    if not isinstance(value, dict):
        raise RequestError.bad(f"'{name}' must be a map")
    # Every message names the field as '<name>.<key>', so that a card's 'id' is
    # never mistaken for the request's 'id'.
    def opt(key: str, check: Callable[[Any, str], Any]) -> Any:
        item = value.get(key)
        return None if item is None else check(item, f"{name}.{key}")

    if value.get("id") is None:
        raise RequestError.bad(f"missing '{name}.id'")
    card = VideoCard(
        id=_ident(value["id"], f"{name}.id", limits),
        url=_url(value.get("url"), f"{name}.url", limits),
        thumb=opt("thumb", lambda v, n: _url(v, n, limits)),
        caption=opt("caption", lambda v, n: _text(v, n, limits.max_text_chars)),
        author=opt("author", lambda v, n: _ident(v, n, limits)),
        duration_ms=opt("duration_ms", _uint),
        at_ms=opt("at_ms", _uint),
    )
    if card.at_ms is not None and card.duration_ms is not None and card.at_ms > card.duration_ms:
        raise RequestError.bad(f"'{name}.at_ms' lies beyond '{name}.duration_ms'")
    return card


def _reply(value: Any) -> Reply | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError.bad("'reply' must be a map {seq, at_ms?}")
    seq = _uint(value.get("seq"), "reply.seq")
    at_ms = value.get("at_ms")
    return Reply(seq, None if at_ms is None else _uint(at_ms, "reply.at_ms"))


def parse_hello(frame: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> Hello:
    f = _Fields(frame, limits)
    token = frame.get("token")
    if not isinstance(token, str) or not token:
        raise RequestError(ErrorCode.UNAUTHORIZED, "missing 'token'")
    resume_value = frame.get("resume")
    if resume_value is None:
        resume_value = {}
    if not isinstance(resume_value, dict):
        raise RequestError.bad("'resume' must be a map of conversation to seq")
    resume = {
        _ident(conv, "resume key", limits): _uint(seq, f"resume[{conv}]")
        for conv, seq in resume_value.items()
    }
    return Hello(f.uint("id"), f.uint("v"), token, f.opt_ident("device"), resume)


def _send(f: _Fields) -> Send:
    to, conv = f.opt_ident("to"), f.opt_ident("conv")
    if (to is None) == (conv is None):
        raise RequestError.bad("give exactly one of 'to' and 'conv'")
    kind = f.frame.get("kind")
    if kind is None:  # nil means absent, as for every optional field
        kind = "text"
    text = f.text("text", f.limits.max_text_chars)
    video_value = f.frame.get("video")
    if kind == "text":
        if not text:
            raise RequestError.bad("a text message needs a non-empty 'text'")
        if video_value is not None:
            raise RequestError.bad("a text message carries no 'video'; use kind 'video'")
        video = None
    elif kind == "video":
        if video_value is None:
            raise RequestError.bad("a video message needs a 'video' card")
        video = parse_video_card(video_value, f.limits)
    else:
        raise RequestError.bad("'kind' must be 'text' or 'video'")
    kind_checked: MessageKind = "video" if kind == "video" else "text"
    return Send(f.uint("id"), f.ident("cmid"), to, conv, kind_checked, text or None, video,
                _reply(f.frame.get("reply")))


def _share(f: _Fields) -> Share:
    bound = f.limits.max_share_targets
    to = f.idents("to", required=False, max_items=bound)
    convs = f.idents("convs", required=False, max_items=bound)
    if not to and not convs:
        raise RequestError.bad("give at least one target in 'to' or 'convs'")
    if len(to) + len(convs) > bound:
        raise RequestError.bad(f"a share reaches at most {bound} targets")
    video = f.frame.get("video")
    if video is None:
        raise RequestError.bad("missing 'video'")
    return Share(f.uint("id"), f.ident("cmid"), parse_video_card(video, f.limits), to, convs,
                 f.text("text", f.limits.max_text_chars) or None)


def _history(f: _Fields) -> History:
    limit = f.opt_uint("limit")  # nil means absent, as for every optional field
    if limit is None:
        limit = 50
    if not 0 < limit <= f.limits.max_history_limit:
        raise RequestError.bad(f"'limit' must be between 1 and {f.limits.max_history_limit}")
    return History(f.uint("id"), f.ident("conv"), f.opt_uint("before"), limit)


def _react(f: _Fields) -> React:
    emoji = f.text("emoji", f.limits.max_emoji_chars, required=True)
    # U+200D (zero width joiner) is a format character, so str.isprintable()
    # refuses it, yet it glues emoji sequences such as a family or a rainbow flag.
    visible = (emoji or "").replace("\u200d", "")
    if not visible or not visible.isprintable() or visible.isspace():
        raise RequestError.bad("'emoji' must be a non-empty printable string")
    assert emoji is not None  # required=True above
    return React(f.uint("id"), f.ident("conv"), f.uint("seq"), emoji, f.boolean("on"),
                 f.opt_uint("at_ms"))


def _group_create(f: _Fields) -> GroupCreate:
    title = f.text("title", f.limits.max_title_chars) or ""
    return GroupCreate(f.uint("id"), f.idents("members", required=False), title)


def _ping(f: _Fields) -> Ping:
    return Ping(None if f.frame.get("id") is None else f.uint("id"))


def _refresh(f: _Fields) -> Refresh:
    token = f.frame.get("token")
    if not isinstance(token, str) or not token:
        raise RequestError.bad("missing 'token'")
    return Refresh(f.uint("id"), token)


_PARSERS: dict[str, Callable[[_Fields], Request]] = {
    "send": _send,
    "share": _share,
    "history": _history,
    "read": lambda f: Read(f.uint("id"), f.ident("conv"), f.uint("seq")),
    "react": _react,
    "unsend": lambda f: Unsend(f.uint("id"), f.ident("conv"), f.uint("seq")),
    "group.create": _group_create,
    "group.add": lambda f: GroupAdd(f.uint("id"), f.ident("conv"), f.idents("members")),
    "group.remove": lambda f: GroupRemove(f.uint("id"), f.ident("conv"), f.idents("members")),
    "group.leave": lambda f: GroupLeave(f.uint("id"), f.ident("conv")),
    "friend.request": lambda f: FriendRequest(f.uint("id"), f.ident("user")),
    "friend.accept": lambda f: FriendAccept(f.uint("id"), f.ident("user")),
    "friend.remove": lambda f: FriendRemove(f.uint("id"), f.ident("user")),
    "block": lambda f: Block(f.uint("id"), f.ident("user")),
    "unblock": lambda f: Unblock(f.uint("id"), f.ident("user")),
    "presence": lambda f: PresenceQuery(f.uint("id"), f.idents("users")),
    "watch": lambda f: Watch(f.uint("id"), f.ident("conv"), f.ident("video_id"),
                             f.uint("pos_ms"), f.boolean("playing")),
    "refresh": _refresh,
    "ping": _ping,
    "typing": lambda f: Typing(f.ident("conv")),
    "hello": lambda f: parse_hello(f.frame, f.limits),
}


def known_types() -> frozenset[str]:
    """Every request and signal type of the protocol."""
    return frozenset(_PARSERS)


def parse_request(frame: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> Request:
    """Validate a decoded frame into a typed request, or raise :class:`RequestError`."""
    parser = _PARSERS.get(frame["t"])
    if parser is None:
        raise RequestError.bad(f"unknown request type {frame['t'][:40]!r}")
    if frame["t"] not in SIGNALS and frame["t"] != "ping" and request_id(frame) is None:
        raise RequestError.bad("a request needs an unsigned integer 'id'")
    return parser(_Fields(frame, limits))
