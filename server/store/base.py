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

    def to_wire(self) -> dict[str, Any]:
        return events.message(
            self.conv, self.seq, self.sender, self.ts, self.kind, self.cmid,
            text=self.text, video=self.video, reply=self.reply, unsent=self.unsent,
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


class StoreUnavailable(Exception):
    """The store cannot serve right now (locked, disk full, connection lost)."""


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

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
