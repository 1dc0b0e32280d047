"""Typed values the SDK hands to the application: messages, conversations, events.

All of them are frozen, slotted dataclasses built from wire maps by ``from_wire``
constructors that tolerate fields a newer hub may add. Hub events the SDK knows
become their own types (:class:`Presence`, :class:`Typing`, :class:`ReadReceipt`,
:class:`Reaction`, :class:`Unsent`, :class:`WatchState`, :class:`FriendEvent`);
any other event type arrives as a plain :class:`Event`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from clipwire.protocol import Reply, VideoCard

__all__ = [
    "ClientEvent",
    "Conversation",
    "ConversationChanged",
    "Disconnected",
    "Event",
    "FriendEvent",
    "FriendRequest",
    "Message",
    "Presence",
    "Reaction",
    "ReactionSummary",
    "ReadReceipt",
    "Reconnected",
    "Reply",
    "ShareResult",
    "Typing",
    "Unsent",
    "VideoCard",
    "WatchState",
    "card_from_wire",
    "event_from_wire",
]


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int(value: Any) -> int:
    return _opt_int(value) or 0


def card_from_wire(value: Any) -> VideoCard | None:
    """A :class:`VideoCard` from its wire map (``None`` if it is not one)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("id"), str):
        return None
    return VideoCard(
        id=value["id"],
        url=str(value.get("url", "")),
        thumb=_opt_str(value.get("thumb")),
        caption=_opt_str(value.get("caption")),
        author=_opt_str(value.get("author")),
        duration_ms=_opt_int(value.get("duration_ms")),
        at_ms=_opt_int(value.get("at_ms")),
        # False: the hub's card resolver could not confirm this card (the sender's, as sent).
        verified=value["verified"] if isinstance(value.get("verified"), bool) else None,
    )


def _reply_from_wire(value: Any) -> Reply | None:
    if not isinstance(value, Mapping) or _opt_int(value.get("seq")) is None:
        return None
    return Reply(value["seq"], _opt_int(value.get("at_ms")))


@dataclass(frozen=True, slots=True)
class ReactionSummary:
    """One emoji on a message, as ``history`` reports it.

    ``count`` users reacted with it, ``me`` says whether you did, and ``moments``
    lists the distinct ``at_ms`` positions of a video share it was pinned to (sorted).
    """

    emoji: str
    count: int
    me: bool
    moments: tuple[int, ...] = ()

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ReactionSummary:
        moments = data.get("moments")
        return cls(
            emoji=str(data.get("emoji", "")),
            count=_int(data.get("count")),
            me=bool(data.get("me")),
            moments=tuple(m for m in moments if _opt_int(m) is not None)
            if isinstance(moments, list) else (),
        )


@dataclass(frozen=True, slots=True)
class Message:
    """One stored message: a ``msg`` event, a ``history`` entry, or what a send returned.

    ``unsent``: a tombstone, taken back by its sender, without a body. ``hidden``: in a
    group, from a user you block, without a body; it keeps its place, so seqs stay
    gap-free. ``reactions`` (a summary per emoji) come with ``history`` pages only.
    """

    conv: str
    seq: int
    sender: str
    ts: int
    kind: str = "text"
    text: str | None = None
    video: VideoCard | None = None
    reply: Reply | None = None
    cmid: str = ""
    unsent: bool = False
    hidden: bool = False
    reactions: tuple[ReactionSummary, ...] = ()

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Message:
        reactions = tuple(ReactionSummary.from_wire(r) for r in data.get("reactions") or ()
                          if isinstance(r, Mapping))
        return cls(
            conv=str(data["conv"]),
            seq=_int(data["seq"]),
            sender=str(data.get("from", "")),
            ts=_int(data.get("ts")),
            kind=str(data.get("kind", "text")),
            text=_opt_str(data.get("text")),
            video=card_from_wire(data.get("video")),
            reply=_reply_from_wire(data.get("reply")),
            cmid=str(data.get("cmid", "")),
            unsent=bool(data.get("unsent", False)),
            hidden=bool(data.get("hidden", False)),
            reactions=reactions,
        )


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation as the user sees it (``welcome`` list and ``conv`` events).

    ``peer`` is set for a DM; ``title``, ``members`` and ``owner`` for a group.
    ``last_seq`` follows the messages the client has seen; ``read_seq`` your read
    marker (from the welcome, your reads and your other devices' reads). ``watch``
    is the latest watch-together state known, from the welcome or ``watch`` events.
    """

    conv: str
    kind: Literal["dm", "group"] | str
    last_seq: int = 0
    read_seq: int = 0
    unread: int = 0
    peer: str | None = None
    title: str | None = None
    members: tuple[str, ...] = ()
    owner: str | None = None
    watch: WatchState | None = None

    @property
    def name(self) -> str:
        """A short human label: the peer of a DM, the title of a group."""
        if self.kind == "dm":
            return self.peer or self.conv
        return self.title or self.conv

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], previous: Conversation | None = None) -> Conversation:
        """From a welcome entry or a ``conv`` event, keeping what the event leaves out."""
        members = data.get("members")
        base = previous or cls(conv=str(data["conv"]), kind=str(data.get("kind", "group")))
        return cls(
            conv=base.conv,
            kind=str(data.get("kind", base.kind)),
            last_seq=max(_int(data.get("last_seq")), base.last_seq),
            read_seq=_int(data["read_seq"]) if "read_seq" in data else base.read_seq,
            unread=_int(data["unread"]) if "unread" in data else base.unread,
            peer=_opt_str(data.get("peer")) or base.peer,
            title=_opt_str(data["title"]) if "title" in data else base.title,
            members=(tuple(m for m in members if isinstance(m, str))
                     if isinstance(members, list) else base.members),
            owner=_opt_str(data["owner"]) if "owner" in data else base.owner,
            watch=(WatchState.from_wire({**data["watch"], "conv": base.conv})
                   if isinstance(data.get("watch"), Mapping) else base.watch),
        )


@dataclass(frozen=True, slots=True)
class ConversationChanged:
    """A ``conv`` event: the user was added to or removed from a conversation, or it changed.

    ``conversation`` is the summary after the change (for ``removed``, the last one known).
    """

    conversation: Conversation
    removed: bool = False

    @property
    def conv(self) -> str:
        return self.conversation.conv


@dataclass(frozen=True, slots=True)
class Event:
    """A hub event of a type this SDK does not know, as sent (``data`` without ``t``)."""

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Presence:
    """Whether ``user`` is online: a ``presence`` event, a friend's state, a ``presence`` answer.

    ``last_seen`` (ms) is when their last device last left, if known. It is ``None``
    for users never seen, for users you may not see (they look offline), and in the
    event that says a user came online.
    """

    user: str
    online: bool
    last_seen: int | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Presence:
        return cls(str(data.get("user", "")), bool(data.get("online")),
                   _opt_int(data.get("last_seen")))


@dataclass(frozen=True, slots=True)
class Typing:
    """``user`` is typing in ``conv`` (never stored; show it for a few seconds)."""

    conv: str
    user: str


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """``user`` has read ``conv`` up to ``seq``; ``user`` may be you, on another device."""

    conv: str
    user: str
    seq: int


@dataclass(frozen=True, slots=True)
class Reaction:
    """A ``reaction`` event: ``user`` put (``on``) or took back an emoji on message ``seq``.

    ``at_ms`` pins it to a moment of a shared video.
    """

    conv: str
    seq: int
    user: str
    emoji: str
    on: bool
    at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Unsent:
    """Message ``seq`` of ``conv`` was taken back by its sender: drop its body."""

    conv: str
    seq: int


@dataclass(frozen=True, slots=True)
class WatchState:
    """Watch-together playback in ``conv``: ``by`` set ``video_id`` at ``pos_ms``, playing or not.

    ``ts`` is the hub's time of that update (last writer wins); the position now is
    about ``pos_ms + (server time - ts)`` while ``playing``.
    """

    conv: str
    by: str
    video_id: str
    pos_ms: int
    playing: bool
    ts: int

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> WatchState:
        return cls(conv=str(data.get("conv", "")), by=str(data.get("by", "")),
                   video_id=str(data.get("video_id", "")), pos_ms=_int(data.get("pos_ms")),
                   playing=bool(data.get("playing")), ts=_int(data.get("ts")))


FriendState = Literal["requested", "accepted", "removed"]
Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class FriendRequest:
    """A pending friend request: ``direction`` ``"in"`` from ``user``, ``"out"`` to them."""

    user: str
    direction: Direction | str


@dataclass(frozen=True, slots=True)
class FriendEvent:
    """A ``friend`` event: your relation with ``user`` changed.

    ``state`` is ``"requested"`` (``direction`` ``"in"``: they asked you, ``"out"``:
    you asked them), ``"accepted"`` (you are friends) or ``"removed"`` (unfriended,
    or a request withdrawn or declined). ``was`` is the relation just before, as the
    client knew it: ``"friends"``, ``"in"``, ``"out"`` or ``None``.
    """

    user: str
    state: FriendState | str
    direction: Direction | str | None = None
    was: str | None = None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection dropped or was closed; ``reconnecting`` says whether the client retries."""

    code: int
    reason: str
    reconnecting: bool


@dataclass(frozen=True, slots=True)
class Reconnected:
    """A new connection said hello; the resume backlog and any hole fills follow."""

    session: str
    attempts: int


@dataclass(frozen=True, slots=True)
class ShareResult:
    """One target of a share: ``conv``/``seq``/``ts`` on success, ``error`` (a code) if refused."""

    target: str
    target_kind: Literal["to", "conv"]
    conv: str | None = None
    seq: int | None = None
    ts: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.seq is not None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ShareResult:
        kind: Literal["to", "conv"] = "to" if "to" in data else "conv"
        target = data.get(kind)
        return cls(
            target=str(target),
            target_kind=kind,
            conv=_opt_str(data.get("conv")),
            seq=_opt_int(data.get("seq")),
            ts=_opt_int(data.get("ts")),
            error=_opt_str(data.get("error")),
        )


def event_from_wire(t: str, data: Mapping[str, Any]) -> ClientEvent | None:
    """The typed event for a social-layer event frame; ``None`` for other types or bad fields."""

    def text(key: str) -> str | None:
        return _opt_str(data.get(key))

    conv, user, seq = text("conv"), text("user"), _opt_int(data.get("seq"))
    if t == "presence" and user is not None:
        return Presence.from_wire(data)
    if t == "typing" and conv is not None and user is not None:
        return Typing(conv, user)
    if t == "read" and conv is not None and user is not None and seq is not None:
        return ReadReceipt(conv, user, seq)
    if t == "reaction" and conv is not None and user is not None and seq is not None:
        emoji = text("emoji")
        if emoji is not None:
            return Reaction(conv, seq, user, emoji, bool(data.get("on")), _opt_int(data.get("at_ms")))
    if t == "unsent" and conv is not None and seq is not None:
        return Unsent(conv, seq)
    if t == "watch" and conv is not None and text("video_id") is not None:
        return WatchState.from_wire(data)
    if t == "friend" and user is not None and text("state") is not None:
        return FriendEvent(user, str(data["state"]), text("direction"))
    return None


#: What ``async for event in client`` yields.
ClientEvent = (
    Message | ConversationChanged | Presence | Typing | ReadReceipt | Reaction | Unsent | WatchState
    | FriendEvent | Event | Disconnected | Reconnected
)
