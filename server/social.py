"""Friends, blocks and presence: who knows about whom.

The graph lives in the store; each user's side of it is cached here while
needed, so the DM policy and the block checks on the message path read no SQL.
Presence is in memory only: a user is online while one of their devices is
connected to this hub, so a restart never leaves anyone shown online.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clipwire.protocol import ErrorCode, RequestError, encode
from clipwire.protocol import frames as f

from .store.base import SocialRecord, StoreUnavailable

if TYPE_CHECKING:
    from .hub import Handler, Hub
    from .session import Session

log = logging.getLogger("clipwire.social")

MAX_WATCHED = 500  # users one connection may watch with ``presence``

#: One user's side of a committed change: the user, the record the writer read, the edit.
Change = tuple[str, SocialRecord, Callable[[SocialRecord], None]]


@dataclass(slots=True)
class _Traffic:
    """Loads and writes of one user's record under way; kept only while there are some."""

    loads: int = 0
    writes: int = 0
    generation: int = 0  # bumped as a write starts and ends, and on a forget


class SocialGraph:
    """A bounded cache of :class:`SocialRecord` per user, kept in step with the store."""

    def __init__(self, hub: Hub, max_entries: int = 100_000) -> None:
        self._hub = hub
        self._records: dict[str, SocialRecord] = {}
        self._max_entries = max_entries
        self._traffic: dict[str, _Traffic] = {}

    def peek(self, user: str) -> SocialRecord | None:
        return self._records.get(user)

    async def record(self, user: str) -> SocialRecord:
        cached = self._records.get(user)
        if cached is not None:
            return cached
        traffic = self._traffic.setdefault(user, _Traffic())
        traffic.loads += 1
        generation = traffic.generation
        try:
            loaded = await self._hub.store.social(user)
        finally:
            traffic.loads -= 1
            self._done(user, traffic)
        cached = self._records.get(user)  # loaded by someone else meanwhile: theirs is current
        if cached is not None:
            return cached
        if traffic.writes or traffic.generation != generation:
            return loaded  # the read may predate a write's commit: good for now, not to keep
        if len(self._records) >= self._max_entries:
            del self._records[next(iter(self._records))]
        self._records[user] = loaded
        return loaded

    def forget(self, user: str) -> None:
        """Drop ``user``'s record (changed on another node, or no longer followed here);
        a load under way may have read the store before that change, so it is not kept."""
        self._records.pop(user, None)
        traffic = self._traffic.get(user)
        if traffic is not None:
            traffic.generation += 1

    async def commit(self, write: Awaitable[None], changes: Sequence[Change]) -> None:
        """Await the store ``write``, then make each change to the record its writer read
        and to the one cached now, if another (a second look may have reloaded it
        meanwhile). Loads of these users that overlap the write are not cached: they
        may have read the store before it committed, and nothing would correct them."""
        held = [(user, self._traffic.setdefault(user, _Traffic())) for user, _, _ in changes]
        for _, traffic in held:
            traffic.writes += 1
            traffic.generation += 1
        try:
            await write
        finally:
            for user, traffic in held:
                traffic.writes -= 1
                traffic.generation += 1
                self._done(user, traffic)
        for user, read, change in changes:
            change(read)
            cached = self._records.get(user)
            if cached is not None and cached is not read:
                change(cached)

    def _done(self, user: str, traffic: _Traffic) -> None:
        if not traffic.loads and not traffic.writes:
            del self._traffic[user]

    async def second_look(self, user: str) -> bool:
        """Reread ``user``'s record from the store before refusing them on what is cached
        (another node may have changed it a moment ago); False when no look is due
        (second_look.py)."""
        if not self._hub.second_looks.allow(user):
            return False
        self.forget(user)
        await self.record(user)
        return True

    async def blocked_either(self, a: str, b: str) -> bool:
        record = await self.record(a)
        return b in record.blocking or b in record.blocked_by

    async def are_friends(self, a: str, b: str) -> bool:
        return b in (await self.record(a)).friends


class FriendsDmPolicy:
    """The default DM policy: both users are friends."""

    def __init__(self, graph: SocialGraph) -> None:
        self._graph = graph

    async def may_dm(self, sender: str, recipient: str) -> bool:
        return sender != recipient and await self._graph.are_friends(sender, recipient)


class Social:
    """Handlers for friend requests, blocks and presence, and presence on connect/leave."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.graph = SocialGraph(hub)
        # watched user -> sessions watching them through ``presence``
        self._watchers: dict[str, set[Session]] = {}
        self._watching: dict[Session, set[str]] = {}
        # Users announced online and not yet announced offline. Counting devices at
        # came_online is not enough: two devices whose welcomes overlap each see two.
        self._online: set[str] = set()
        # watched user -> presence events for this node's watchers, in order, not yet sent
        self._to_send: dict[str, deque[tuple[list[Session], bytes]]] = {}

    def handlers(self) -> dict[type, Handler]:
        return {
            f.FriendRequest: self._friend_request, f.FriendAccept: self._friend_accept,
            f.FriendRemove: self._friend_remove, f.Block: self._block, f.Unblock: self._unblock,
            f.PresenceQuery: self._presence,
        }

    # -- welcome and presence -------------------------------------------------

    async def welcome_fields(self, user: str) -> dict[str, Any]:
        record = await self.graph.record(user)
        seen = await self.hub.store.last_seen(sorted(record.friends))
        return {
            "requests": [{"user": u, "direction": "in"} for u in sorted(record.requests_in)]
            + [{"user": u, "direction": "out"} for u in sorted(record.requests_out)],
            "friends": await self._states(sorted(record.friends), seen),
        }

    async def _states(self, users: list[str], seen: dict[str, int]) -> list[dict[str, Any]]:
        online = await self.hub.presence.online(users)
        return [{"user": u, "online": u in online, "last_seen": seen.get(u)} for u in users]

    async def came_online(self, session: Session) -> None:
        """Tell friends and watchers when a user's first device connects."""
        if session.user not in self._online and session.user in self.hub.sessions:
            self._online.add(session.user)
            if await self.hub.presence.arrive(session.user):  # first device on any node
                await self._announce(session.user, online=True, last_seen=None)

    async def went_offline(self, session: Session) -> None:
        """Forget what ``session`` watched; announce the user's last device leaving."""
        for watched in self._watching.pop(session, ()):
            sessions = self._watchers.get(watched)
            if sessions is not None:
                sessions.discard(session)
                if not sessions:
                    del self._watchers[watched]
        if session.user not in self.hub.sessions and session.user in self._online:
            self._online.discard(session.user)
            if not await self.hub.presence.leave(session.user):
                return  # still connected to another node
            now = self.hub.now_ms()
            try:
                await self.hub.store.set_last_seen({session.user: now})
            except StoreUnavailable as exc:  # a full disk must not leave the user shown online
                log.warning("%s: last seen of %s not saved: %s", session.id, session.user, exc)
            if session.user in self._online:
                return  # a device came back meanwhile and was announced online already
            await self._announce(session.user, online=False, last_seen=now)

    async def _announce(self, user: str, *, online: bool, last_seen: int | None) -> None:
        # The epoch orders one user's transitions, so a backend can drop stale ones.
        self.hub.emit("presence", {"user": user, "online": online, "last_seen": last_seen,
                                   "epoch": self.hub.now_ms()})
        record = await self.graph.record(user)
        hidden = record.blocking | record.blocked_by
        audience = [u for u in record.friends if u not in hidden]
        data = encode({"t": "presence", "user": user, "online": online, "last_seen": last_seen})
        self.hub.deliver(audience, data, ephemeral=True)
        skip = hidden | record.friends  # friends had it already
        self.to_watchers(user, data, skip)
        if self.hub.cluster is not None:
            self.hub.cluster.forward_presence(user, data, skip)

    def to_watchers(self, user: str, data: bytes, skip: Any) -> None:
        """Push a presence event to this node's connections watching ``user``.

        A watch may have been granted by a group shared then and left since (on any
        node), so each watcher is asked again, against the store, before it hears:
        presence goes only to friends and to users sharing a conversation now. Events
        about one user are sent in order, one after the other.
        """
        watchers = [w for w in self._watchers.get(user, ()) if w.user not in skip]
        if not watchers:
            return
        queue = self._to_send.get(user)
        if queue is None:
            queue = self._to_send[user] = deque()
            self.hub.spawn(self._send_to_watchers(user, queue))
        queue.append((watchers, data))

    async def _send_to_watchers(self, user: str, queue: deque[tuple[list[Session], bytes]]) -> None:
        try:
            while queue:
                watchers, data = queue[0]
                for watcher in watchers:
                    if await self._still_sees(watcher.user, user):
                        watcher.push(data)
                    else:  # not told again, even if they share a group later: ask anew
                        self._unwatch(watcher, user)
                queue.popleft()
        finally:
            del self._to_send[user]

    async def _still_sees(self, viewer: str, user: str) -> bool:
        try:
            return await self._may_see(viewer, user, await self.graph.record(viewer))
        except StoreUnavailable as exc:  # unsure: nothing is told
            log.warning("presence of %s not told to %s: %s", user, viewer, exc)
            return False

    def _unwatch(self, session: Session, user: str) -> None:
        self._watching.get(session, set()).discard(user)
        sessions = self._watchers.get(user)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._watchers[user]

    async def parted(self, gone: Sequence[str], stay: Sequence[str]) -> None:
        """``gone`` left a group (or were removed) where ``stay`` remain: each pair that is
        neither friends nor sharing another conversation now looks offline to each other,
        as after a block, and hears no more of the other's presence (``to_watchers``)."""
        for user in gone:
            record = await self.graph.record(user)
            for other in stay:
                if (other == user or other in record.friends or other in record.blocking
                        or other in record.blocked_by
                        or await self.hub.store.share_conversation(user, other)):
                    continue  # a block already said so
                self.hub.deliver((other,), encode({"t": "presence", "user": user,
                                                   "online": False, "last_seen": None}),
                                 ephemeral=True)
                self.hub.deliver((user,), encode({"t": "presence", "user": other,
                                                  "online": False, "last_seen": None}),
                                 ephemeral=True)

    async def lost(self, users: list[str]) -> None:
        """Users whose node died without saying goodbye: offline, last seen now."""
        now = self.hub.now_ms()
        await self.hub.store.set_last_seen(dict.fromkeys(users, now))
        for user in users:
            await self._announce(user, online=False, last_seen=now)
            if user not in self.hub.sessions:
                self.graph.forget(user)

    async def all_offline(self) -> None:
        """On shutdown: everyone connected was last seen now."""
        now = self.hub.now_ms()
        await self.hub.store.set_last_seen(dict.fromkeys(self.hub.sessions, now))

    async def _presence(self, session: Session, req: f.PresenceQuery) -> None:
        # Each user asked is a lookup (repeats too): the cost is per user, not per query.
        self.hub.rates.check(session, "presence", req.users, max(1, len(req.users)))
        record = await self.graph.record(session.user)
        watched = self._watching.setdefault(session, set())
        if len(watched | set(req.users)) > MAX_WATCHED:
            raise RequestError.bad(f"a connection watches at most {MAX_WATCHED} users")
        visible = [u for u in req.users if await self._may_see(session.user, u, record)]
        states = {s["user"]: s for s in await self._states(
            visible, await self.hub.store.last_seen(visible))}
        result = []
        for user in req.users:
            if user in states:
                watched.add(user)
                self._watchers.setdefault(user, set()).add(session)
                result.append(states[user])
            else:  # strangers and blocks look offline and never seen: nothing leaks
                result.append({"user": user, "online": False, "last_seen": None})
        if self.hub.cluster is not None:
            await self.hub.cluster.watch_presence(session.user, list(states))
        session.reply({"t": "ok", "id": req.id, "users": result})

    async def _may_see(self, viewer: str, user: str, record: SocialRecord) -> bool:
        """Friends, and users sharing a conversation, unless a block stands between."""
        if user == viewer:
            return True
        if user in record.blocking or user in record.blocked_by:
            return False
        if user in record.friends:
            return True
        return await self.hub.store.share_conversation(viewer, user)

    # -- friends ---------------------------------------------------------------

    def _friend_event(self, to: str, about: str, state: str, direction: str | None = None) -> None:
        event: dict[str, Any] = {"t": "friend", "user": about, "state": state}
        if direction is not None:
            event["direction"] = direction
        self.hub.deliver((to,), encode(event))

    async def _pair(self, session: Session, other: str) -> tuple[SocialRecord, SocialRecord]:
        if other == session.user:
            raise RequestError.bad("that is you")
        return await self.graph.record(session.user), await self.graph.record(other)

    async def _set(self, me: str, other: str, mine: SocialRecord, theirs: SocialRecord,
                   state: str | None) -> None:
        """Store the friendship state and mirror it in both cached records."""
        write = self.hub.store.set_friendship(me, other, state, me if state == "pending" else None,
                                              self.hub.now_ms())
        await self.graph.commit(write, [(me, mine, _friendship(other, state, asked=True)),
                                        (other, theirs, _friendship(me, state, asked=False))])
        self.hub.social_changed((me, other))

    async def _set_block(self, blocker: str, blocked: str, mine: SocialRecord,
                         theirs: SocialRecord, on: bool) -> None:
        """Store the block (or its lifting) and mirror it in both cached records."""
        edit: Callable[[set[str], str], None] = set.add if on else set.discard
        write = self.hub.store.set_block(blocker, blocked, on, self.hub.now_ms())
        await self.graph.commit(write, [(blocker, mine, lambda r: edit(r.blocking, blocked)),
                                        (blocked, theirs, lambda r: edit(r.blocked_by, blocker))])
        self.hub.social_changed((blocker, blocked))

    async def _friend_request(self, session: Session, req: f.FriendRequest) -> None:
        self.hub.rates.check(session, "friend", req.user)
        me, other = session.user, req.user
        mine, theirs = await self._pair(session, other)
        if (other in mine.blocking or other in mine.blocked_by) and await self.graph.second_look(me):
            mine = await self.graph.record(me)
        if other in mine.blocking:  # the blocker knows: unblock first
            raise RequestError(ErrorCode.FORBIDDEN, "you may not befriend this user")
        if other in mine.blocked_by:
            # As big messengers do, the request looks sent: a refusal would tell the
            # requester they are blocked. Nothing is stored, and the blocker hears nothing.
            self._friend_event(me, other, "requested", "out")
            session.reply({"t": "ok", "id": req.id})
            return
        if other in mine.requests_in:  # they asked first: this is a yes
            await self._accept(session, req.id, other, mine, theirs)
            return
        if other not in mine.friends and other not in mine.requests_out:
            await self._set(me, other, mine, theirs, "pending")
            self._friend_event(other, me, "requested", "in")
            self._friend_event(me, other, "requested", "out")
        session.reply({"t": "ok", "id": req.id})

    async def _friend_accept(self, session: Session, req: f.FriendAccept) -> None:
        mine, theirs = await self._pair(session, req.user)
        if (req.user not in mine.friends and req.user not in mine.requests_in
                and await self.graph.second_look(session.user)):
            mine = await self.graph.record(session.user)  # the request may be a moment old
        if req.user in mine.friends:
            session.reply({"t": "ok", "id": req.id})
            return
        if req.user not in mine.requests_in:
            raise RequestError(ErrorCode.NOT_FOUND, "no friend request from this user")
        await self._accept(session, req.id, req.user, mine, theirs)

    async def _accept(self, session: Session, request_id: int, other: str, mine: SocialRecord,
                      theirs: SocialRecord) -> None:
        me = session.user
        await self._set(me, other, mine, theirs, "friends")
        self._friend_event(other, me, "accepted")
        self._friend_event(me, other, "accepted")
        session.reply({"t": "ok", "id": request_id})
        # New friends see each other's presence from now on.
        seen = await self.hub.store.last_seen([me, other])
        mine_state, their_state = await self._states([me, other], seen)
        self.hub.deliver((other,), encode({"t": "presence", **mine_state}))
        self.hub.deliver((me,), encode({"t": "presence", **their_state}))

    async def _friend_remove(self, session: Session, req: f.FriendRemove) -> None:
        me, other = session.user, req.user
        mine, theirs = await self._pair(session, other)
        known = other in mine.friends or other in mine.requests_in or other in mine.requests_out
        if known:
            await self._set(me, other, mine, theirs, None)
            self._friend_event(other, me, "removed")
            self._friend_event(me, other, "removed")
        session.reply({"t": "ok", "id": req.id})

    async def set_friends(self, a: str, b: str, friends: bool) -> None:
        """Mirror the backend's graph: make ``a`` and ``b`` friends, or nothing to each other."""
        mine, theirs = await self.graph.record(a), await self.graph.record(b)
        if friends and b not in mine.friends:
            await self._set(a, b, mine, theirs, "friends")
            self._friend_event(a, b, "accepted")
            self._friend_event(b, a, "accepted")
        elif not friends and (b in mine.friends or b in mine.requests_in or b in mine.requests_out):
            await self._set(a, b, mine, theirs, None)
            self._friend_event(a, b, "removed")
            self._friend_event(b, a, "removed")
        for user in (a, b):
            if user not in self.hub.sessions:
                self.graph.forget(user)

    async def set_block(self, blocker: str, blocked: str, on: bool) -> None:
        """Mirror a block decided by the backend, with the same effects as the request."""
        mine, theirs = await self.graph.record(blocker), await self.graph.record(blocked)
        if on and blocked not in mine.blocking:
            await self._set_block(blocker, blocked, mine, theirs, True)
            if blocked in mine.friends or blocked in mine.requests_in or blocked in mine.requests_out:
                await self._set(blocker, blocked, mine, theirs, None)
        elif not on and blocked in mine.blocking:
            await self._set_block(blocker, blocked, mine, theirs, False)
        for user in (blocker, blocked):
            if user not in self.hub.sessions:
                self.graph.forget(user)

    # -- blocks ----------------------------------------------------------------

    async def _block(self, session: Session, req: f.Block) -> None:
        self.hub.rates.check(session, "block", ("block", req.user))
        me, other = session.user, req.user
        mine, theirs = await self._pair(session, other)
        if other not in mine.blocking:
            await self._set_block(me, other, mine, theirs, True)
            if other in mine.friends or other in mine.requests_in or other in mine.requests_out:
                await self._set(me, other, mine, theirs, None)
                self._friend_event(me, other, "removed")
                self._friend_event(other, me, "removed")
            # The blocker stops seeing the other at once. The blocked user is told nothing:
            # a presence event naming the blocker would reveal the block; their presence
            # of the blocker just stops, as it does when a friendship ends.
            self.hub.deliver((me,), encode({"t": "presence", "user": other, "online": False,
                                             "last_seen": None}))
        session.reply({"t": "ok", "id": req.id})

    async def _unblock(self, session: Session, req: f.Unblock) -> None:
        self.hub.rates.check(session, "block", ("unblock", req.user))
        me, other = session.user, req.user
        mine, theirs = await self._pair(session, other)
        if other in mine.blocking:
            await self._set_block(me, other, mine, theirs, False)
        session.reply({"t": "ok", "id": req.id})


def _friendship(peer: str, state: str | None, *, asked: bool) -> Callable[[SocialRecord], None]:
    """The edit that leaves ``peer`` in ``state`` with a record's owner (``asked``: the
    owner is the one who sent the request)."""

    def edit(record: SocialRecord) -> None:
        record.friends.discard(peer)
        record.requests_in.discard(peer)
        record.requests_out.discard(peer)
        if state == "friends":
            record.friends.add(peer)
        elif state == "pending":
            (record.requests_out if asked else record.requests_in).add(peer)

    return edit
