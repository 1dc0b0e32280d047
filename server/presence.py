"""Who is online anywhere: the registry the hub asks, on one node or many.

A hub calls ``arrive`` when a user's first device connects to it and ``leave``
when the last one leaves; the registry answers whether that made the user
online (or offline) across all nodes. ``LocalPresence`` is the single-node
default; ``RedisPresence`` (in broker/redis.py) keeps the answer in Redis with
node heartbeats, and reports the users of a node that died through ``on_lost``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Protocol

OnLost = Callable[[list[str]], Awaitable[None]]
OnGone = Callable[[], None]


class PresenceRegistry(Protocol):
    async def start(self, node: str, on_lost: OnLost, on_gone: OnGone | None = None) -> None:
        """Begin; ``on_lost(users)`` reports users left offline by a dead node (on the one
        node that sweeps it), ``on_gone()`` tells every node that another one is gone."""
        ...

    async def arrive(self, user: str) -> bool:
        """Record ``user`` here; True if they were offline on every node."""
        ...

    async def leave(self, user: str) -> bool:
        """Drop ``user`` here; True if they are now offline on every node."""
        ...

    async def online(self, users: Iterable[str]) -> set[str]: ...

    async def close(self) -> None: ...


class LocalPresence:
    """One node: online means connected here."""

    def __init__(self, connected: Collection[str]) -> None:
        self._connected = connected

    async def start(self, node: str, on_lost: OnLost, on_gone: OnGone | None = None) -> None:
        pass

    async def arrive(self, user: str) -> bool:
        return True

    async def leave(self, user: str) -> bool:
        return True

    async def online(self, users: Iterable[str]) -> set[str]:
        return {user for user in users if user in self._connected}

    async def close(self) -> None:
        pass
