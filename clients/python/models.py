"""Typed values the SDK hands to the application: messages, conversations, events.

All of them are frozen, slotted dataclasses built from wire maps by ``from_wire``
constructors that tolerate fields a newer hub may add.
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
    "Message",
    "Reaction",
    "Reconnected",
    "Reply",
    "ShareResult",
    "VideoCard",
    "card_from_wire",
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
    )


def _reply_from_wire(value: Any) -> Reply | None:
    if not isinstance(value, Mapping) or _opt_int(value.get("seq")) is None:
        return None
    return Reply(value["seq"], _opt_int(value.get("at_ms")))


@dataclass(frozen=True, slots=True)
class Reaction:
    emoji: str
    count: int
    me: bool


@dataclass(frozen=True, slots=True)
class Message:
    """One stored message: a ``msg`` event, a ``history`` entry, or what a send returned."""

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
    reactions: tuple[Reaction, ...] = ()

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Message:
        reactions = tuple(
            Reaction(str(r.get("emoji", "")), _int(r.get("count")), bool(r.get("me")))
            for r in data.get("reactions") or () if isinstance(r, Mapping)
        )
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
            reactions=reactions,
        )


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation as the user sees it (``welcome`` list and ``conv`` events).

    ``peer`` is set for a DM; ``title``, ``members`` and ``owner`` for a group.
    ``last_seq`` follows the messages the client has seen.
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
    """Any other hub event (``read``, ``reaction``, ``typing``, ``presence``, ...), as sent."""

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)


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


#: What ``async for event in client`` yields.
ClientEvent = Message | ConversationChanged | Event | Disconnected | Reconnected
