"""Who may start a DM with whom: a policy object the hub asks, never hard-codes.

The social layer replaces ``OpenDmPolicy`` with one that asks for friendship;
an embedding application may pass its own object with the same method.
"""

from __future__ import annotations

from typing import Protocol


class DmPolicy(Protocol):
    async def may_dm(self, sender: str, recipient: str) -> bool:
        """True if ``sender`` may write to ``recipient`` in a direct conversation."""
        ...


class OpenDmPolicy:
    """Any two distinct users may talk: the default until friendships exist."""

    async def may_dm(self, sender: str, recipient: str) -> bool:
        return sender != recipient
