"""Who may start a DM with whom: a policy the hub asks, never hard-codes.

``CLIPWIRE_DM_POLICY`` picks ``friends`` (the default, ``FriendsDmPolicy`` in
social.py) or ``everyone`` (``OpenDmPolicy``); an embedding application may pass
its own object with ``may_dm``, or a plain async function. Blocks refuse a DM
whatever the policy says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from clipwire.protocol import VideoCard


@runtime_checkable
class DmPolicy(Protocol):
    async def may_dm(self, sender: str, recipient: str) -> bool:
        """True if ``sender`` may write to ``recipient`` in a direct conversation."""
        ...


class OpenDmPolicy:
    """Any two distinct users may talk: the default until friendships exist."""

    async def may_dm(self, sender: str, recipient: str) -> bool:
        return sender != recipient


PolicyFunction = Callable[[str, str], Awaitable[bool]]


class _CallablePolicy:
    def __init__(self, check: PolicyFunction) -> None:
        self._check = check

    async def may_dm(self, sender: str, recipient: str) -> bool:
        return sender != recipient and await self._check(sender, recipient)


def as_policy(policy: DmPolicy | PolicyFunction) -> DmPolicy:
    """Accept a policy object or a plain ``async def (sender, recipient) -> bool``."""
    if isinstance(policy, DmPolicy):
        return policy
    return _CallablePolicy(policy)


class CardResolver(Protocol):
    """Decides what a shared ``video.id`` really is (the backend's card, not the client's)."""

    async def resolve(self, card: VideoCard) -> VideoCard: ...


class TrustClientCards:
    """The default: the client's card, as validated by the protocol layer."""

    async def resolve(self, card: VideoCard) -> VideoCard:
        return card


class HubListener(Protocol):
    """Told of what happens in the hub (webhooks, analytics). ``on_event`` must not block:
    kinds are ``message.created``, ``message.read``, ``reaction`` and ``presence``;
    payloads are plain dicts. (webhooks.py derives share analytics from them.)"""

    def on_event(self, kind: str, payload: dict[str, Any]) -> None: ...
