"""Group conversations: create, add, remove, leave, and who owns a group.

Membership changes check, await the store, then update the cache; they run one
at a time, so two of them never act on the same stale view.

Being added obeys the DM policy, as in the big messengers: a user joins a group
only if the adder may reach them directly (no block either way, and the policy
or the embedding app's ``may_dm(adder, member)`` consents). Anyone else is left
out and listed in the answer as ``refused``, a block looking like any other
refusal. Otherwise a stranger could be pulled into a group, and spammed there,
by anyone who knows their id.

Every group a user is in lengthens their ``welcome``, and someone they let add
them (a friend, or anyone under ``dm_policy=everyone``) must not be able to grow
it without bound: a user belongs to at most ``max_groups_per_user`` groups, their
own creations included, and adding one more is refused like the policy refuses.
Membership changes are rate-limited (kind ``group``) per member named, so a
group of 480 costs 480.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from clipwire.protocol import ErrorCode, RequestError, encode, events
from clipwire.protocol import frames as f

from .conversations import NO_ACCESS, new_group_id, refuse_nul
from .store.base import Conversation, Role

if TYPE_CHECKING:
    from .hub import Handler, Hub
    from .session import Session


class Groups:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._membership_lock = asyncio.Lock()

    def handlers(self) -> dict[type, Handler]:
        return {f.GroupCreate: self._group_create, f.GroupAdd: self._group_add,
                f.GroupRemove: self._group_remove, f.GroupLeave: self._group_leave}

    async def member_group(self, session: Session, conv_id: str) -> Conversation:
        conv = await self.hub.convs.joined(conv_id, session.user, trusted=session.trusted)
        if conv is None:
            raise RequestError(ErrorCode.FORBIDDEN, NO_ACCESS)
        if conv.kind != "group":
            raise RequestError.bad("a direct conversation has no members to change")
        return conv

    def _check_size(self, count: int) -> None:
        if count > self.hub.config.max_group_members:
            raise RequestError(ErrorCode.TOO_LARGE,
                               f"a group holds at most {self.hub.config.max_group_members} members")

    def _rate(self, session: Session, key: tuple[object, ...], named: int) -> None:
        """Spend one ``group`` token per member named (the backend is not limited)."""
        if not session.trusted:
            cost = min(max(1, named), self.hub.config.max_group_members)  # fits a burst
            self.hub.rates.check(session, "group", key, cost)

    async def _full(self, users: list[str]) -> set[str]:
        """Those of ``users`` already in ``max_groups_per_user`` groups."""
        if not users:
            return set()
        counts = await self.hub.store.group_counts(users)
        cap = self.hub.config.max_groups_per_user
        return {u for u in users if counts.get(u, 0) >= cap}

    async def _admitted(self, session: Session, users: list[str]) -> dict[str, bool]:
        """Whether ``session``'s user may add each of ``users``; the backend (trusted) always may."""
        if session.trusted or not users:
            return dict.fromkeys(users, True)
        # The adder's record is loaded once here, not by each of the checks at once.
        await self.hub.social.graph.record(session.user)
        verdicts = await asyncio.gather(*(self.hub.may_reach(session.user, u) for u in users))
        return dict(zip(users, verdicts, strict=True))

    async def _group_create(self, session: Session, req: f.GroupCreate) -> None:
        refuse_nul(req.title, "title")
        wanted = [u for u in dict.fromkeys(req.members) if u != session.user]
        # Counted before anyone is asked: the bound says nothing about who is a friend,
        # and bounds the work of the policy.
        self._check_size(len(wanted) + 1)
        self._rate(session, ("create", req.title, tuple(wanted)), len(wanted))
        admitted = await self._admitted(session, wanted)
        async with self._membership_lock:  # counted and created as one step (see _group_add)
            full = await self._full([session.user, *(u for u in wanted if admitted[u])])
            if session.user in full:
                raise RequestError(ErrorCode.TOO_LARGE, f"a user belongs to at most "
                                   f"{self.hub.config.max_groups_per_user} groups; leave one first")
            others = [u for u in wanted if admitted[u] and u not in full]
            refused = [u for u in wanted if not admitted[u] or u in full]
            # Members in the store's order (joined_ts, then user id), so that the member
            # lists and the owner's heir are the same before and after a reload.
            roles: dict[str, Role] = {session.user: "owner", **dict.fromkeys(others, "member")}
            conv = Conversation(new_group_id(), "group", req.title, 0, dict(sorted(roles.items())))
            await self.hub.store.create_group(conv.conv, req.title, session.user, others, self.hub.now_ms())
            self.hub.convs.changed(conv)
            self.hub.membership_changed(conv.conv, list(conv.members))
            session.reply(events.ok(req.id, conv=conv.conv, refused=refused))
        self.hub.announce(conv, conv.members)

    async def _group_add(self, session: Session, req: f.GroupAdd) -> None:
        # The policy is asked outside the lock, which serves every group of the hub: a
        # slow backend hook must not hold up the others' membership changes.
        conv = await self.member_group(session, req.conv)
        wanted = [u for u in dict.fromkeys(req.members) if u not in conv.members]
        self._check_size(len(conv.members) + len(wanted))
        self._rate(session, ("add", req.conv, tuple(wanted)), len(wanted))
        admitted = await self._admitted(session, wanted)
        async with self._membership_lock:  # check and change as one step
            conv = await self.member_group(session, req.conv)
            wanted = [u for u in dict.fromkeys(req.members) if u not in conv.members]
            self._check_size(len(conv.members) + len(wanted))
            # Someone who left meanwhile was not asked about yet (rare).
            admitted.update(await self._admitted(session, [u for u in wanted if u not in admitted]))
            # Counted under the lock: two adds at once must not both pass the cap.
            for user in await self._full([u for u in wanted if admitted[u]]):
                admitted[user] = False
            new = [u for u in wanted if admitted[u]]
            if new:
                await self.hub.store.add_members(conv.conv, new, self.hub.now_ms())
                conv.members.update(dict.fromkeys(sorted(new), "member"))
                self.hub.convs.changed(conv)
                self.hub.membership_changed(conv.conv, new)
            session.reply(events.ok(req.id, refused=[u for u in wanted if not admitted[u]]))
            if new:
                self.hub.announce(conv, conv.members)

    async def _group_remove(self, session: Session, req: f.GroupRemove) -> None:
        self._rate(session, ("remove", req.conv, tuple(req.members)), len(set(req.members)))
        async with self._membership_lock:  # check and change as one step
            conv = await self.member_group(session, req.conv)
            if conv.members.get(session.user) != "owner" and not session.trusted:
                raise RequestError(ErrorCode.FORBIDDEN, "only the group's owner removes members")
            gone = [u for u in req.members if u in conv.members and u != session.user]
            if gone:
                await self.hub.store.remove_members(conv.conv, gone)
                for user in gone:
                    del conv.members[user]
                self.hub.convs.changed(conv)
                self.hub.membership_changed(conv.conv, gone)
            session.reply(events.ok(req.id))
            if gone:
                self._left(conv, gone)

    async def _group_leave(self, session: Session, req: f.GroupLeave) -> None:
        async with self._membership_lock:  # check and change as one step
            conv = await self.member_group(session, req.conv)
            was_owner = conv.members[session.user] == "owner"
            await self.hub.store.remove_members(conv.conv, [session.user])
            del conv.members[session.user]
            if was_owner and conv.members:
                heir = next(iter(conv.members))
                await self.hub.store.set_role(conv.conv, heir, "owner")
                conv.members[heir] = "owner"
            self.hub.convs.changed(conv)
            self.hub.membership_changed(conv.conv, [session.user])
            session.reply(events.ok(req.id))
            self._left(conv, [session.user])

    def _left(self, conv: Conversation, gone: list[str]) -> None:
        self.hub.deliver(gone, encode({"t": "conv", "conv": conv.conv, "kind": conv.kind,
                                       "removed": True}))
        self.hub.announce(conv, conv.members)
        # Presence is shared with strangers only while a conversation is.
        self.hub.spawn(self.hub.social.parted(gone, list(conv.members)))
