"""Friends and pending friend requests, as the client knows them.

The welcome fills them; ``friend`` and ``presence`` events keep them current.
After a reconnect, what a new welcome shows to have changed meanwhile is
returned as the events that would have said so, for the application to see.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from .models import FriendEvent, FriendRequest, Presence

__all__ = ["Friends"]


class Friends:
    """``friends`` (user to :class:`Presence`) and ``requests`` (pending, both directions)."""

    def __init__(self) -> None:
        self.friends: dict[str, Presence] = {}
        self.requests: list[FriendRequest] = []

    def relation(self, user: str) -> str | None:
        """``"friends"``, ``"in"`` or ``"out"`` (a pending request), or ``None``."""
        if user in self.friends:
            return "friends"
        return next((r.direction for r in self.requests if r.user == user), None)

    def load(self, welcome: Mapping[str, Any]) -> list[FriendEvent | Presence]:
        """Take ``requests`` and ``friends`` from a welcome; return the changes as events."""
        before = self._relations()
        old_friends = self.friends
        requests, friends = welcome.get("requests"), welcome.get("friends")
        self.requests = [
            FriendRequest(r["user"], str(r.get("direction", "in")))
            for r in (requests if isinstance(requests, list) else ())
            if isinstance(r, dict) and isinstance(r.get("user"), str)
        ]
        self.friends = {
            f["user"]: Presence.from_wire(f)
            for f in (friends if isinstance(friends, list) else ())
            if isinstance(f, dict) and isinstance(f.get("user"), str)
        }
        after = self._relations()
        changes: list[FriendEvent | Presence] = []
        for user in dict.fromkeys([*before, *after]):
            was, now = before.get(user), after.get(user)
            if was == now:
                continue
            if now == "friends":
                changes.append(FriendEvent(user, "accepted", was=was))
            elif now is not None:
                changes.append(FriendEvent(user, "requested", now, was=was))
            else:
                changes.append(FriendEvent(user, "removed", was=was))
        for user, state in self.friends.items():
            old = old_friends.get(user)
            if state.online != (old is not None and old.online):
                changes.append(state)
        return changes

    def apply(self, event: FriendEvent | Presence) -> FriendEvent | Presence:
        """Follow one hub event; a :class:`FriendEvent` comes back with ``was`` filled in."""
        if isinstance(event, Presence):
            if event.user in self.friends:
                self.friends[event.user] = event
            return event
        user, was = event.user, self.relation(event.user)
        self.requests = [r for r in self.requests if r.user != user]
        if event.state == "requested":
            self.friends.pop(user, None)
            self.requests.append(FriendRequest(user, event.direction or "in"))
        elif event.state == "accepted":
            self.friends.setdefault(user, Presence(user, False))
        else:
            self.friends.pop(user, None)
        return replace(event, was=was)

    def seen(self, states: Iterable[Presence]) -> None:
        """Presence answers: update the friends among them."""
        for state in states:
            if state.user in self.friends:
                self.friends[state.user] = state

    def _relations(self) -> dict[str, str | None]:
        return {user: self.relation(user) for user in [*self.friends, *(r.user for r in self.requests)]}
