"""Group conversations: create, add, remove, leave, and who owns a group.

Membership changes check, await the store, then update the cache; they run one
at a time, so two of them never act on the same stale view.
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

    async def _group_create(self, session: Session, req: f.GroupCreate) -> None:
        refuse_nul(req.title, "title")
        others = [u for u in req.members if u != session.user]
        self._check_size(len(others) + 1)
        # Members in the store's order (joined_ts, then user id), so that the member
        # lists and the owner's heir are the same before and after a reload.
        roles: dict[str, Role] = {session.user: "owner", **dict.fromkeys(others, "member")}
        conv = Conversation(new_group_id(), "group", req.title, 0, dict(sorted(roles.items())))
        await self.hub.store.create_group(conv.conv, req.title, session.user, others, self.hub.now_ms())
        self.hub.convs.changed(conv)
        self.hub.membership_changed(conv.conv, list(conv.members))
        session.reply(events.ok(req.id, conv=conv.conv))
        self.hub.announce(conv, conv.members)

    async def _group_add(self, session: Session, req: f.GroupAdd) -> None:
        async with self._membership_lock:  # check and change as one step
            conv = await self.member_group(session, req.conv)
            new = [u for u in req.members if u not in conv.members]
            self._check_size(len(conv.members) + len(new))
            if new:
                await self.hub.store.add_members(conv.conv, new, self.hub.now_ms())
                conv.members.update(dict.fromkeys(sorted(new), "member"))
                self.hub.convs.changed(conv)
                self.hub.membership_changed(conv.conv, new)
            session.reply(events.ok(req.id))
            if new:
                self.hub.announce(conv, conv.members)

    async def _group_remove(self, session: Session, req: f.GroupRemove) -> None:
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
