"""The one small interface every system's client adapter implements.

Scenarios only talk to a ``Driver`` (connect a user, groups) and its ``Conn``s
(dm, room, share, close), so each scenario runs unchanged on every system.
Message bodies are opaque strings carrying the generator's step and send
timestamp; every adapter hands the body of each delivered message to
``on_body``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

OnBody = Callable[[str], None]

# A video card as an app would share it; peers carry the same bytes inside the body.
CARD: dict[str, Any] = {
    "id": "v42", "url": "https://videos.example/v/42", "thumb": "https://videos.example/v/42.jpg",
    "caption": "the cat that plays piano", "author": "dave", "duration_ms": 31000,
}
CARD_TEXT = "|".join(str(v) for v in CARD.values())


def node_of(user: str, nodes: int) -> int:
    """Which node a user connects to when a system runs several: its trailing number modulo ``nodes``.

    Scenarios name users ``u0``, ``u1``, ... so they know who sits where (and
    can make every message cross nodes); a name without a number goes to node 0.
    """
    digits = len(user) - len(user.rstrip("0123456789"))
    return int(user[-digits:]) % nodes if digits and nodes > 1 else 0


class Nodes:
    """The URL each user connects to: ``options["urls"]`` (several nodes) or the one ``url``."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.urls: list[str] = list(options.get("urls") or [url])

    def url_for(self, user: str) -> str:
        return self.urls[node_of(user, len(self.urls))]


class Conn(Protocol):
    user: str

    @property
    def closed(self) -> bool: ...

    @property
    def errors(self) -> int:
        """Requests the system refused (only systems that answer sends report any)."""
        ...

    async def dm(self, to: str, body: str) -> None: ...

    async def room(self, gid: str, body: str) -> None: ...

    async def share(self, to: list[str], body: str) -> None: ...

    async def close(self) -> None: ...


class Driver(Protocol):
    name: str
    resumes: bool  # True when a reconnect replays what was missed (Clipwire)

    async def connect(self, user: str, on_body: OnBody) -> Conn: ...

    async def reconnect(self, old: Conn, on_body: OnBody) -> Conn:
        """Connect ``old.user`` again; returns once it is fully back (caught up if it resumes)."""
        ...

    async def create_group(self, owner: Conn, room: str, members: list[str]) -> str:
        """Make a group of ``members`` (owner included); returns the id to send to."""
        ...

    async def join_group(self, conn: Conn, gid: str) -> None:
        """Make ``conn`` receive the group's messages (a no-op where creation already did)."""
        ...
