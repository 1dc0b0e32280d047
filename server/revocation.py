"""Revoking tokens and disconnecting users on every node, not only the one an API call reached.

The node the call reached writes the revocation to the store, closes its own
sessions at once and publishes the event on the user's channel (cluster kinds
``r`` and ``x``), which every node where the user is connected follows; each
closes its sessions of that user when it arrives (4001). A published event can
be lost (Redis away, or a device that was still subscribing), so every node
also re-reads the revocations of all its connected users from the store every
``revocation_check_s``: a session on a revoked token ends within that period
whatever the broker did. A disconnect is not stored: it reaches the other
nodes' sessions through the broker only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from clipwire.protocol.errors import CloseCode

from .auth import revoked
from .store.base import StoreUnavailable

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("clipwire.revocation")


class Revocations:
    """The hub's part in ending a user's sessions, here and on the other nodes."""

    def __init__(self, hub: Hub, period_s: float) -> None:
        self.hub = hub
        self.period_s = period_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="revocation-check")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def revoke(self, user: str, before_ms: int) -> int:
        """Store the revocation first (so the sweep and new hellos see it), then close
        the sessions here and tell the other nodes; return how many closed here."""
        await self.hub.store.revoke(user, before_ms)
        closed = self.close_revoked(user, before_ms)
        if self.hub.cluster is not None:
            self.hub.cluster.revoked(user, before_ms)
        return closed

    def disconnect(self, user: str) -> int:
        """Close ``user``'s sessions here and tell the other nodes; return how many closed here."""
        closed = self.close_all(user)
        if self.hub.cluster is not None:
            self.hub.cluster.disconnected(user)
        return closed

    def close_revoked(self, user: str, before_ms: int) -> int:
        """Close this node's sessions of ``user`` on a token issued before ``before_ms``
        (as ``hello`` judges it: see :func:`auth.revoked`)."""
        closed = 0
        for session in list(self.hub.sessions.get(user, ())):
            if revoked(session.issued_at_ms, before_ms):
                session.close(CloseCode.UNAUTHORIZED, "token revoked")
                closed += 1
        return closed

    def close_all(self, user: str) -> int:
        """Close every session of ``user`` on this node (4001: get a new token)."""
        sessions = list(self.hub.sessions.get(user, ()))
        for session in sessions:
            session.close(CloseCode.UNAUTHORIZED, "disconnected by the application")
        return len(sessions)

    async def sweep(self) -> int:
        """Close the sessions here whose token the store says is revoked."""
        found = await self.hub.store.revocations(list(self.hub.sessions))
        return sum(self.close_revoked(user, before) for user, before in found.items())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            # The loop must outlive any failure: it is what bounds a lost event's delay.
            try:
                await self.sweep()
            except StoreUnavailable as exc:
                log.warning("could not re-check revocations: %s", exc)
            except Exception:
                log.exception("could not re-check revocations")
