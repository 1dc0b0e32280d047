"""The hub's membership cache, and how conversation ids are made.

Sends are checked against the cache, not the store, so the hot path reads no
SQL. Every membership change goes through the hub, which updates the cache
after the store commits; a load that raced with a change is not cached. A
refusal is checked against the store first (second_look.py): another node may
have changed the membership a moment ago.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from clipwire.protocol import RequestError

from .second_look import SecondLooks
from .store.base import Conversation, Store

NO_ACCESS = "no such conversation, or you are not a member"


def dm_id(a: str, b: str) -> str:
    """The one DM conversation between two users, whichever of them starts it."""
    low, high = sorted((a, b))
    digest = hashlib.blake2b(f"{low}\0{high}".encode(), digest_size=12).hexdigest()
    return f"dm:{digest}"


def new_group_id() -> str:
    return f"g:{secrets.token_urlsafe(12)}"


def refuse_nul(value: str | None, name: str) -> None:
    """Refuse U+0000 in a text stored as such (message text, group title), on every store
    alike: PostgreSQL text cannot hold it, and one such message failed its whole group
    commit (every sender in the batch got ``unavailable``), a title ``internal``."""
    if value is not None and "\x00" in value:
        raise RequestError.bad(f"'{name}' must not contain U+0000")


def summary(conv: Conversation, for_user: str) -> dict[str, Any]:
    """A conversation's membership as the ``conv`` event and ``welcome`` show it."""
    out: dict[str, Any] = {"conv": conv.conv, "kind": conv.kind, "last_seq": conv.last_seq}
    if conv.kind == "dm":
        out["peer"] = next((u for u in conv.members if u != for_user), for_user)
    else:
        out["title"] = conv.title
        out["members"] = list(conv.members)
        out["owner"] = next((u for u, role in conv.members.items() if role == "owner"), None)
    return out


class ConversationCache:
    """Bounded map of conversation id to :class:`Conversation`, filled from the store."""

    def __init__(self, store: Store, second_looks: SecondLooks | None = None,
                 max_entries: int = 100_000) -> None:
        self._store = store
        self._second_looks = second_looks or SecondLooks(enabled=False)  # one node: none needed
        self._max_entries = max_entries
        self._entries: dict[str, Conversation] = {}
        self._generation = 0
        # conv -> [loads under way, highest seq another node committed meanwhile]
        self._loading: dict[str, list[int]] = {}

    def peek(self, conv: str) -> Conversation | None:
        return self._entries.get(conv)

    async def get(self, conv: str) -> Conversation | None:
        entry = self._entries.get(conv)
        if entry is not None:
            return entry
        generation = self._generation
        mark = self._loading.setdefault(conv, [0, 0])
        mark[0] += 1
        try:
            loaded = await self._store.load_conversation(conv)
        finally:
            mark[0] -= 1
            if not mark[0]:
                del self._loading[conv]
        if loaded is None:
            return None
        # The load may have read the store before a message whose event came meanwhile.
        loaded.last_seq = max(loaded.last_seq, mark[1])
        entry = self._entries.get(conv)
        if entry is not None:
            return entry
        if generation == self._generation:
            self._put(loaded)
        return loaded

    async def joined(self, conv_id: str, user: str, *, trusted: bool = False) -> Conversation | None:
        """``conv_id`` if ``user`` is a member of it (or ``trusted``: the backend), else None.
        A refusal read from the cache is checked against the store first: another node
        may have just added them."""
        cached = conv_id in self._entries
        conv = await self.get(conv_id)
        if trusted:
            return conv
        if cached and (conv is None or user not in conv.members):
            # A refusal read from the cache does the store read a refusal of an unknown
            # (never cached) id does: were it faster, timing would tell an outsider which
            # conversations exist. A refusal just read from the store needs no second look.
            if self._second_looks.allow(user):
                self.forget(conv_id)
                conv = await self.get(conv_id)
            else:
                fresh = await self._store.load_conversation(conv_id)
                conv = fresh if fresh is not None and user in fresh.members else conv
        return conv if conv is not None and user in conv.members else None

    def outdated(self) -> None:
        """Something changed for a conversation not cached: loads under way are stale."""
        self._generation += 1

    def forget(self, conv: str) -> None:
        """Drop ``conv`` (changed on another node); the next use reloads it."""
        self._generation += 1
        self._entries.pop(conv, None)

    def advanced(self, conv: str, seq: int) -> None:
        """Another node committed message ``seq`` of ``conv``."""
        entry = self._entries.get(conv)
        if entry is not None and seq > entry.last_seq:
            entry.last_seq = seq
        mark = self._loading.get(conv)
        if mark is not None and seq > mark[1]:
            mark[1] = seq

    def changed(self, conv: Conversation) -> None:
        """Record a committed change; loads that started before it are not cached."""
        self._generation += 1
        self._put(conv)

    def _put(self, conv: Conversation) -> None:
        if conv.conv not in self._entries and len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[conv.conv] = conv
