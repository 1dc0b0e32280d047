"""The ``Store`` interface: what the hub needs from durable storage.

Every implementation passes the shared contract suite in ``tests/store``. The
hub never issues queries itself; it asks for whole operations, and appends come
in batches so that one transaction (and one fsync) serves many senders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from clipwire.protocol import events

ConversationKind = Literal["dm", "group"]
Role = Literal["owner", "member"]


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message the hub has validated and wants stored."""

    conv: str
    sender: str
    cmid: str
    kind: str
    ts: int
    text: str | None = None
    video: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A committed message with its place in the conversation."""

    conv: str
    seq: int
    sender: str
    cmid: str
    kind: str
    ts: int
    text: str | None = None
    video: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    unsent: bool = False

    def to_wire(self, *, hidden: bool = False) -> dict[str, Any]:
        """The message as it travels; ``hidden`` gives the body-less stub a blocker sees."""
        return events.message(
            self.conv, self.seq, self.sender, self.ts, self.kind, self.cmid,
            text=self.text, video=self.video, reply=self.reply, unsent=self.unsent,
            hidden=hidden,
        )


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of one append: the stored message, and whether it was a retry."""

    message: StoredMessage
    duplicate: bool


@dataclass(slots=True)
class Conversation:
    """A conversation's identity and membership (user to role), in join order."""

    conv: str
    kind: ConversationKind
    title: str
    last_seq: int
    members: dict[str, Role] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """One line of a user's conversation list, as ``welcome`` shows it."""

    conv: str
    kind: ConversationKind
    title: str
    members: tuple[str, ...]
    last_seq: int
    read_seq: int
    unread: int
    owner: str | None = None


@dataclass(slots=True)
class SocialRecord:
    """One user's side of the social graph, as the hub caches it."""

    friends: set[str] = field(default_factory=set)
    requests_in: set[str] = field(default_factory=set)
    requests_out: set[str] = field(default_factory=set)
    blocking: set[str] = field(default_factory=set)
    blocked_by: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class ReactionSummary:
    """One emoji on one message: how many reacted, whether you did, at which moments."""

    seq: int
    emoji: str
    count: int
    me: bool
    moments: tuple[int, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"emoji": self.emoji, "count": self.count, "me": self.me}
        if self.moments:
            out["moments"] = list(self.moments)
        return out


class StoreUnavailable(Exception):
    """The store cannot serve right now (locked, disk full, connection lost)."""


class SchemaOutOfDate(Exception):
    """The schema is not this hub's: older (run ``clipwire migrate``) or newer (a later release)."""


def schema_newer(version: int, known: int) -> SchemaOutOfDate:
    """A schema written by a later release: running on it could corrupt what that release keeps."""
    return SchemaOutOfDate(f"the database is at schema version {version}, newer than this hub "
                           f"knows ({known}): run the release that upgraded it, or a later one")


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def migrate(self) -> int:
        """Create or upgrade the schema; return the version it ends at."""
        ...

    async def append_batch(self, items: Sequence[NewMessage]) -> list[Appended | None]:
        """Store ``items`` in one transaction, in order, each with the next ``seq``.

        An item whose (conv, sender, cmid) is already stored, earlier or in the
        same batch, yields the first message with ``duplicate=True``. An item
        whose conversation does not exist yields ``None``. Returns only after
        the commit.
        """
        ...

    async def ensure_dm(self, conv: str, a: str, b: str, ts: int) -> bool:
        """Create the DM ``conv`` between ``a`` and ``b`` unless it exists; True if created."""
        ...

    async def create_group(self, conv: str, title: str, owner: str, members: Iterable[str],
                           ts: int) -> None: ...

    async def add_members(self, conv: str, users: Iterable[str], ts: int) -> None: ...

    async def remove_members(self, conv: str, users: Iterable[str]) -> None: ...

    async def set_role(self, conv: str, user: str, role: Role) -> None: ...

    async def load_conversation(self, conv: str) -> Conversation | None: ...

    async def user_conversations(self, user: str) -> list[ConversationSummary]: ...

    async def get_message(self, conv: str, seq: int) -> StoredMessage | None: ...

    async def history(self, conv: str, before: int | None, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` messages with ``seq < before`` (or the newest), oldest first."""
        ...

    async def messages_after(self, conv: str, after: int, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` messages with ``seq > after``, oldest first."""
        ...

    async def messages_with_video(self, video_id: str) -> list[tuple[str, int]]:
        """(conv, seq) of every message, not yet a tombstone, whose card is ``video_id``."""
        ...

    async def revoke(self, user: str, before_ms: int) -> None:
        """Refuse ``user``'s tokens issued before ``before_ms`` from now on."""
        ...

    async def revoked_before(self, user: str) -> int:
        """The revocation time of ``user``'s tokens (0: none)."""
        ...

    async def revocations(self, users: Sequence[str]) -> dict[str, int]:
        """The revocation time of each of ``users`` that has one: the hub's periodic
        re-check of its connected users, in a few queries rather than one per user."""
        ...

    async def unsend(self, conv: str, seq: int) -> None:
        """Make message ``seq`` a tombstone: its body and reactions are deleted."""
        ...

    async def set_read(self, conv: str, user: str, seq: int) -> int:
        """Move ``user``'s read marker forward to ``seq`` (never back); return the marker."""
        ...

    async def set_reaction(self, conv: str, seq: int, user: str, emoji: str, on: bool,
                           at_ms: int | None, ts: int) -> bool:
        """Add or remove one reaction; True if anything changed."""
        ...

    async def reactions(self, conv: str, seqs: Sequence[int], viewer: str) -> list[ReactionSummary]: ...

    async def social(self, user: str) -> SocialRecord: ...

    async def set_friendship(self, a: str, b: str, state: str | None, requester: str | None,
                             ts: int) -> None:
        """``state`` "pending" (``requester`` asked), "friends", or None to end it."""
        ...

    async def set_block(self, blocker: str, blocked: str, on: bool, ts: int) -> None: ...

    async def set_last_seen(self, seen: dict[str, int]) -> None: ...

    async def group_counts(self, users: Sequence[str]) -> dict[str, int]:
        """How many groups each of ``users`` belongs to (absent: none)."""
        ...

    async def share_conversation(self, a: str, b: str) -> bool:
        """True if ``a`` and ``b`` are members of at least one common conversation."""
        ...

    async def last_seen(self, users: Sequence[str]) -> dict[str, int]: ...
