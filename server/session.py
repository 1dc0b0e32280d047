"""One authenticated client connection as the hub core sees it.

The transport supplies a :class:`Connection`; the core never touches a socket.
``push`` never waits: the transport queues the bytes within a bound and closes
a client that cannot keep up, so one slow phone never slows a fan-out.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Protocol

from clipwire.protocol import CloseCode, encode

from .ratelimit import Lane, TokenBucket

_ids = itertools.count(1)


class Connection(Protocol):
    """What the hub needs from a transport connection."""

    @property
    def remote(self) -> str: ...

    def send(self, data: bytes, ephemeral: bool = False) -> None:
        """Queue one binary frame without waiting; the transport bounds the queue.

        An ``ephemeral`` frame (typing, presence, watch) may be dropped when the
        queue is filling up, so that messages keep their room.
        """
        ...

    def close(self, code: int, reason: str) -> None:
        """Close with a WebSocket close code; returns at once."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes | str]:
        """Incoming messages; the iteration ends when the connection closes."""
        ...


class Session:
    """A user's device, connected. Created when ``hello`` succeeds."""

    __slots__ = ("_expiry", "_held", "_held_bytes", "_held_limit", "conn", "device", "id",
                 "issued_at_ms", "lanes", "name", "strikes", "trusted", "typing_bucket", "user")

    #: A refused request can be retried on this session, so it is promised a time.
    retries_here: ClassVar[bool] = True

    def __init__(self, conn: Connection, user: str, name: str | None, device: str | None,
                 held_limit: int) -> None:
        self.conn = conn
        self.user = user
        self.name = name
        self.device = device
        self.id = f"s{next(_ids)}"
        self._expiry: asyncio.TimerHandle | None = None
        self.typing_bucket: TokenBucket | None = None
        self.lanes: dict[str, Lane] = {}  # rate limits of this connection, by kind
        self.strikes: TokenBucket | None = None  # when it runs dry: closed with 4008
        self.trusted = False  # the app's backend acting through the server API
        self.issued_at_ms: int | None = None
        # Live events are held back until the welcome and resume are out.
        self._held: list[bytes] | None = []
        self._held_bytes = 0
        self._held_limit = held_limit

    def push(self, data: bytes, ephemeral: bool = False) -> None:
        if self._held is None:
            self.conn.send(data, ephemeral)
            return
        self._held.append(data)
        self._held_bytes += len(data)
        if self._held_bytes > self._held_limit:
            self._held = []
            self.close(CloseCode.SLOW_CONSUMER, "too much to deliver during resume")

    def push_now(self, data: bytes) -> None:
        """Send ahead of anything held (the welcome and the resume backlog)."""
        self.conn.send(data)

    def reply(self, frame: dict[str, Any]) -> None:
        self.push_now(encode(frame))

    def release(self) -> None:
        """Send what was held and deliver live from now on."""
        held, self._held = self._held or [], None
        for data in held:
            self.conn.send(data)

    def expire_at(self, when_s: float, now_s: float) -> None:
        """(Re)arm the close that comes when the token expires."""
        if self._expiry is not None:
            self._expiry.cancel()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(
            max(0.0, when_s - now_s), self.close, CloseCode.UNAUTHORIZED, "token expired"
        )

    def close(self, code: int, reason: str) -> None:
        self.conn.close(code, reason)

    def ended(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
