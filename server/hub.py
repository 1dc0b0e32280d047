"""The hub core: sessions, conversations, and delivering every message once.

It knows neither the socket library nor the SQL behind the store: a transport
hands it :class:`Connection` objects, and it talks to a :class:`Store`. Every
request of a connection is handled in order; a ``send`` is validated, queued
for group commit, and answered from the commit callback, so the read loop
moves on without a task per message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from clipwire.protocol import (
    PROTOCOL_VERSION,
    CloseCode,
    ErrorCode,
    FrameError,
    RequestError,
    decode,
    encode,
    events,
)
from clipwire.protocol import frames as f

from .auth import Identity, TokenVerifier, revoked
from .broker.base import Broker
from .cluster import Cluster
from .config import HubConfig
from .conversations import NO_ACCESS, ConversationCache, dm_id, refuse_nul, summary
from .groups import Groups
from .live import LiveSignals
from .metrics import HubMetrics
from .policy import (
    CardResolver,
    DmPolicy,
    HubListener,
    OpenDmPolicy,
    PolicyFunction,
    TrustClientCards,
    as_policy,
)
from .presence import LocalPresence, PresenceRegistry
from .ratelimit import RateLimiter, SharedUsage
from .ratelimit import announced as rate_limits_announced
from .receipts import Receipts
from .revocation import Revocations
from .second_look import SecondLooks
from .session import Connection, Session
from .social import FriendsDmPolicy, Social
from .store.base import (
    Appended,
    Conversation,
    NewMessage,
    Store,
    StoredMessage,
    StoreUnavailable,
)
from .store.group_commit import GroupCommitWriter, WriterFull

log = logging.getLogger("clipwire.hub")

NOT_STORED = "message not stored; retry with the same cmid"
STORE_DOWN = "store unavailable; retry shortly"
# Members of a group listed in the welcome; ``member_count`` says how many there are.
WELCOME_MEMBERS_MAX = 100

Handler = Callable[[Session, Any], Any]


@dataclass(slots=True)
class _ShareReply:
    """Collects one share's per-target outcomes; answers when the last one lands."""

    session: Session
    request_id: int
    results: list[dict[str, Any]]
    remaining: int

    def settle(self, index: int | None, **outcome: Any) -> None:
        """Record target ``index``'s outcome (``None``: the reply's own hold)."""
        if index is not None:
            self.results[index].update(outcome)
        self.remaining -= 1
        if self.remaining == 0:
            self.session.reply(events.ok(self.request_id, results=self.results))


@dataclass(slots=True)
class _Ticket:
    """Who waits for one queued append, and how to answer them."""

    session: Session | None
    request_id: int | None
    share: _ShareReply | None = None
    index: int = 0
    received: float = 0.0  # perf_counter at arrival, for the delivery latency


class Hub:
    def __init__(self, config: HubConfig, store: Store, verifier: TokenVerifier,
                 policy: DmPolicy | PolicyFunction | None = None,
                 clock: Callable[[], float] = time.time, broker: Broker | None = None,
                 presence: PresenceRegistry | None = None,
                 resolver: CardResolver | None = None, usage: SharedUsage | None = None) -> None:
        self.config = config
        self.cluster = Cluster(self, broker) if broker is not None else None
        self.second_looks = SecondLooks(enabled=self.cluster is not None)
        self._background: set[asyncio.Task[None]] = set()
        self.limits = config.limits
        self.store = store
        self.verifier = verifier
        self.clock = clock
        self.resolver: CardResolver = resolver or TrustClientCards()
        self.listeners: list[HubListener] = []
        self.sessions: dict[str, set[Session]] = {}
        self.presence: PresenceRegistry = presence or LocalPresence(self.sessions)
        self.social = Social(self)
        self.live = LiveSignals(self)
        self.revocations = Revocations(self, config.revocation_check_s)
        self.policy: DmPolicy = as_policy(policy) if policy is not None else (
            OpenDmPolicy() if config.dm_policy == "everyone" else FriendsDmPolicy(self.social.graph)
        )
        self._unwelcomed: set[Connection] = set()  # connected, no hello yet
        self.connection_count = 0
        self.convs = ConversationCache(store, self.second_looks)
        self.metrics = HubMetrics()
        self.rates = RateLimiter(config, usage)  # usage: spend shared with the other nodes
        self.writer: GroupCommitWriter[_Ticket] = GroupCommitWriter(
            store, self._committed, self._failed,
            max_pending=config.commit_pending_max, max_batch=config.commit_batch_max,
            observe=self.metrics.committed,
        )
        self._handlers: dict[type, Handler] = {
            f.Send: self._send, f.Share: self._share, f.History: self._history,
            f.Refresh: self._refresh, f.Ping: self._ping, f.Hello: self._hello_again,
            **Groups(self).handlers(), **Receipts(self).handlers(), **self.social.handlers(),
            **self.live.handlers(),
        }
        self._welcome_limits = {**self.limits.to_wire(), "resume_cap": config.resume_cap,
                                "resume_total_max": config.resume_total_max,
                                "hello_timeout_ms": int(config.hello_timeout_s * 1000),
                                **rate_limits_announced(config)}

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        if self.cluster is not None:
            await self.cluster.start()
        await self.presence.start(self.cluster.node if self.cluster else "local", self.social.lost,
                                  self._nodes_gone)
        self.rates.start()
        self.revocations.start()
        self.writer.start()

    async def close(self, *, drain: bool = False) -> None:
        """Disconnect everyone, then write what is queued.

        ``drain`` (SIGTERM) closes with 4010 so clients reconnect, maybe to another
        node, at once; otherwise with 1001. Either way the commit in flight and
        everything queued behind it are written before this returns.
        """
        code, reason = ((CloseCode.DRAINING, "hub draining: reconnect") if drain
                        else (CloseCode.GOING_AWAY, "hub shutting down"))
        for conn in list(self._unwelcomed):
            conn.close(code, reason)
        try:
            await self.social.all_offline()
        except Exception:
            log.exception("could not record last_seen at shutdown")
        for sessions in list(self.sessions.values()):
            for session in list(sessions):
                session.close(code, reason)
        await self.writer.close()

    async def disconnect(self) -> None:
        """Leave the other nodes: after every connection has ended (so departures were told)."""
        await self.rates.close()
        await self.revocations.close()
        await self.presence.close()
        if self.cluster is not None:
            await self.cluster.close()

    async def ready(self) -> tuple[bool, str]:
        """Whether the store (and the broker, with several nodes) answer: for /readyz."""
        try:
            await asyncio.wait_for(self.store.load_conversation("readyz-probe"), 2)
        except Exception as exc:
            return False, f"store: {exc or type(exc).__name__}"
        if self.cluster is not None:
            try:
                await asyncio.wait_for(self.cluster.broker.ping(), 2)
            except Exception as exc:
                return False, f"broker: {exc or type(exc).__name__}"
        return True, "ready"

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- one connection -----------------------------------------------------

    async def serve(self, conn: Connection) -> None:
        """Run one connection from its first frame to its end."""
        self.connection_count += 1
        try:
            await self._serve(conn)
        finally:
            self.connection_count -= 1

    async def _serve(self, conn: Connection) -> None:
        incoming = aiter(conn)
        self._unwelcomed.add(conn)
        try:
            async with asyncio.timeout(self.config.hello_timeout_s):
                first = await anext(incoming)
        except TimeoutError:
            conn.close(CloseCode.HELLO_TIMEOUT, "no hello in time")
            return
        except StopAsyncIteration:
            return
        finally:
            self._unwelcomed.discard(conn)
        session = await self._hello(conn, first)
        if session is None:
            return
        log.info("%s connected: user %s from %s", session.id, session.user, conn.remote)
        self.metrics.connections.inc()
        try:
            await self.social.came_online(session)
            async for data in incoming:
                if not await self._on_frame(session, data):
                    break
        finally:
            self.metrics.connections.dec()
            self._unregister(session)
            log.info("%s disconnected", session.id)
            try:
                await self.social.went_offline(session)
            except Exception:
                log.exception("%s: presence update on leave failed", session.id)

    def _read_frame(self, conn: Connection, data: bytes | str) -> dict[str, Any] | None:
        if isinstance(data, str):
            conn.close(CloseCode.PROTOCOL_ERROR, "text frames are not accepted; send binary msgpack")
            return None
        try:
            return decode(data, self.limits)
        except FrameError as exc:
            conn.close(exc.close_code, exc.reason)
            return None

    async def _hello(self, conn: Connection, data: bytes | str) -> Session | None:
        frame = self._read_frame(conn, data)
        if frame is None:
            return None
        rid = f.request_id(frame)
        if frame["t"] != "hello":
            conn.close(CloseCode.PROTOCOL_ERROR, "the first frame must be hello")
            return None
        try:
            hello = f.parse_hello(frame, self.limits)
            if hello.v != PROTOCOL_VERSION:
                raise RequestError.bad(f"protocol version {hello.v} is not served; use 1")
        except RequestError as exc:
            conn.send(encode(events.error(rid, exc.code, exc.message)))
            unauthorized = exc.code == ErrorCode.UNAUTHORIZED
            conn.close(CloseCode.UNAUTHORIZED if unauthorized else CloseCode.PROTOCOL_ERROR, exc.message)
            return None
        try:
            identity = self.verifier.verify(hello.token)
            await self._check_revoked(identity)
        except RequestError as exc:
            conn.send(encode(events.error(rid, exc.code, exc.message)))
            conn.close(CloseCode.UNAUTHORIZED, exc.message)
            return None
        if len(self.sessions.get(identity.user, ())) >= self.config.max_devices_per_user:
            message = f"at most {self.config.max_devices_per_user} connections per user"
            conn.send(encode(events.error(rid, ErrorCode.RATE_LIMITED, message)))
            conn.close(CloseCode.RATE_LIMITED, message)
            return None
        session = Session(conn, identity.user, identity.name, hello.device,
                          self.config.send_buffer_bytes)
        session.issued_at_ms = identity.issued_at_ms
        session.expire_at(identity.expires_at, self.clock())
        self.sessions.setdefault(session.user, set()).add(session)
        try:
            await self._welcome(session, hello)
        except Exception:
            self._unregister(session)
            raise
        return session

    async def _welcome(self, session: Session, hello: f.Hello) -> None:
        convs = await self.store.user_conversations(session.user)
        if self.cluster is not None and len(self.sessions.get(session.user, ())) == 1:
            await self.cluster.user_here(session.user, {c.conv: c.last_seq for c in convs})
        record = await self.social.graph.record(session.user)
        hidden = record.blocking | record.blocked_by
        # The welcome is queued at once, like the resume backlog after it: together they
        # must fit well within the send buffer, however many groups others put the user
        # in. It lists the most recently active conversations that fit a quarter of the
        # buffer and says ``inbox_more``; a big group lists its first members only.
        room = self.config.send_buffer_bytes // 4
        listed: list[dict[str, Any]] = []
        more = False
        for c in convs:
            item: dict[str, Any] = {"conv": c.conv, "kind": c.kind, "last_seq": c.last_seq,
                                    "read_seq": c.read_seq, "unread": c.unread}
            if c.kind == "dm":
                item["peer"] = next((u for u in c.members if u != session.user), session.user)
            else:
                item["title"] = c.title
                item["members"] = list(c.members[:WELCOME_MEMBERS_MAX])
                item["member_count"] = len(c.members)
                item["owner"] = c.owner
            watching = self.live.current(c.conv, hidden)
            if watching is not None:
                item["watch"] = watching.to_wire()
            size = len(encode(item))
            if size > room:
                more = True
                break
            room -= size
            listed.append(item)
        social = await self.social.welcome_fields(session.user)
        welcome = encode(events.ok(
            hello.id, user=session.user, session=session.id, server_time=self.now_ms(),
            limits=self._welcome_limits, convs=listed, **({"inbox_more": True} if more else {}),
            **social,
        ))
        session.push_now(welcome)
        await self._resume(session, hello.resume, self.config.send_buffer_bytes // 2 - len(welcome))
        session.release()

    async def _resume(self, session: Session, resume: dict[str, int], room: int) -> None:
        """Push what ``session`` missed, at most ``room`` bytes (what the welcome left of
        half the send buffer: the backlog is queued at once, and a client with big
        messages waiting must not be closed with 4009 on every resume)."""
        budget = self.config.resume_total_max
        for conv_id, last in resume.items():
            conv = await self.convs.joined(conv_id, session.user)
            if conv is None or last >= conv.last_seq:
                continue
            cap = min(self.config.resume_cap, budget)
            if cap == 0:
                session.push_now(encode(events.gap(conv_id, last + 1, conv.last_seq)))
                continue
            backlog = await self.store.messages_after(conv_id, last, cap)
            reached, cut = last, False
            blocking = (await self.social.graph.record(session.user)).blocking
            for msg in backlog:
                data = encode({"t": "msg", **msg.to_wire(hidden=msg.sender in blocking)})
                if len(data) > room:
                    cut = True
                    break
                room -= len(data)
                budget -= 1
                session.push_now(data)
                reached = msg.seq
            if (cut or len(backlog) == cap) and reached < conv.last_seq:
                session.push_now(encode(events.gap(conv_id, reached + 1, conv.last_seq)))

    def _unregister(self, session: Session) -> None:
        session.ended()
        self.rates.release(session)
        devices = self.sessions.get(session.user)
        if devices is not None:
            devices.discard(session)
            if not devices:
                del self.sessions[session.user]
                if self.cluster is not None:
                    # Not followed here any more: what is cached of them may go stale.
                    self.social.graph.forget(session.user)
                    self.spawn(self.cluster.user_gone(session.user))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run background work (rare: cluster upkeep), logging any failure."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    def membership_changed(self, conv: str, users: Any) -> None:
        """Other nodes must reload ``conv``; this one follows it for its own users."""
        if self.cluster is not None:
            self.cluster.membership_changed(conv, users)
            self.spawn(self.cluster.follow_conv(conv))

    def emit(self, kind: str, payload: dict[str, Any]) -> None:
        """Tell the listeners (webhooks, an embedding app) what happened; never blocks."""
        for listener in self.listeners:
            try:
                listener.on_event(kind, payload)
            except Exception:
                log.exception("listener failed on %s", kind)

    def social_changed(self, users: Any) -> None:
        """Friends or blocks of ``users`` changed: other nodes drop what they cached."""
        if self.cluster is not None:
            self.cluster.social_changed(users)
            for user in users:  # nobody keeps the record of a user not here up to date
                if user not in self.sessions:
                    self.social.graph.forget(user)

    def _nodes_gone(self) -> None:
        """Another node stopped or died: what it stored but never published needs gaps here."""
        self.spawn(self.catch_up_all())

    async def catch_up_all(self) -> None:
        """After events may have been lost (the broker reconnected, or another node died
        between storing and publishing): a ``gap`` for every followed conversation that
        moved past what this node delivered."""
        if self.cluster is None:
            return
        for conv_id in self.cluster.followed_convs():
            seen = self.cluster.seen(conv_id)
            fresh = await self.store.load_conversation(conv_id)
            if fresh is None:
                continue
            cached = self.convs.peek(conv_id)
            if seen is None:
                seen = cached.last_seq if cached is not None else None
            if cached is None or fresh.last_seq >= cached.last_seq:  # never move the cache back
                self.convs.forget(conv_id)
                self.convs.changed(fresh)
            if seen is not None and fresh.last_seq > seen:
                self.cluster.saw(conv_id, fresh.last_seq)
                self.deliver_local(fresh.members, encode(events.gap(conv_id, seen + 1, fresh.last_seq)))

    async def _on_frame(self, session: Session, data: bytes | str) -> bool:
        frame = self._read_frame(session.conn, data)
        if frame is None:
            return False
        self.metrics.frame_in(frame["t"])
        refused = await self.dispatch(session, frame)
        if refused is not None:
            self.metrics.errors.labels(refused).inc()
        return True

    async def dispatch(self, session: Session, frame: dict[str, Any]) -> str | None:
        """Validate and serve one request; every refusal is answered, never raised.

        Returns the code of the error answered (``None`` if none was), which the
        caller counts: frames from sockets and server API calls have separate metrics.
        """
        try:
            request = f.parse_request(frame, self.limits)
            handler = self._handlers.get(type(request))
            if handler is None:
                raise RequestError(ErrorCode.BAD_REQUEST, f"'{frame['t']}' is not served by this hub")
            await handler(session, request)
        except RequestError as exc:
            if frame["t"] in f.SIGNALS:
                return None
            session.reply(events.error(f.request_id(frame), exc.code, exc.message,
                                       exc.retry_after_ms))
            return str(exc.code)
        except StoreUnavailable as exc:
            # A write outside the group commit failed (the DM of a first message, a
            # reaction, a group...) because the store did: a full disk, a lost database.
            # That is no bug in the hub but a condition to retry, as for a failed commit.
            log.error("%s: request %r: store unavailable: %s", session.id, frame["t"], exc)
            if frame["t"] not in f.SIGNALS:
                message = NOT_STORED if frame["t"] in ("send", "share") else STORE_DOWN
                session.reply(events.error(f.request_id(frame), ErrorCode.UNAVAILABLE, message))
            return str(ErrorCode.UNAVAILABLE)
        except Exception:
            log.exception("%s: request %r failed", session.id, frame["t"])
            session.reply(events.error(f.request_id(frame), ErrorCode.INTERNAL, "internal error"))
            return "internal"
        return None

    # -- fan-out ------------------------------------------------------------

    def deliver(self, users: Any, data: bytes, skip: Session | None = None, *,
                conv: str | None = None, seq: int | None = None, ephemeral: bool = False) -> None:
        """Write one encoded frame to every device of ``users``, here and on other nodes.

        ``conv`` names the conversation the event belongs to, so other nodes get
        it through that conversation's channel (and ``seq`` keeps their caches current).
        ``ephemeral`` events (typing, presence, watch) are the first a full send
        buffer drops, before the client is closed with 4009.
        """
        if self.cluster is None:
            self.deliver_local(users, data, skip, ephemeral)
            return
        users = list(users)
        self.deliver_local(users, data, skip, ephemeral)
        self.cluster.forward(users, data, conv, seq, ephemeral)

    def deliver_local(self, users: Any, data: bytes, skip: Session | None = None,
                      ephemeral: bool = False) -> None:
        """Write one encoded frame to the connected devices of ``users`` on this node."""
        sessions = self.sessions
        written = 0
        for user in users:
            devices = sessions.get(user)
            if devices:
                for session in devices:
                    if session is not skip:
                        session.push(data, ephemeral)
                        written += 1
        self.metrics.frames_out.inc(written)

    def announce(self, conv: Conversation, users: Any) -> None:
        """Send ``users`` the conversation's current summary (a ``conv`` event)."""
        if conv.kind == "group":
            # Through each user's channel: a member just added is not following the conversation yet.
            self.deliver(users, encode({"t": "conv", **summary(conv, "")}))
        else:
            for user in users:
                self.deliver((user,), encode({"t": "conv", **summary(conv, user)}))

    # -- messages -----------------------------------------------------------

    async def _writable(self, session: Session, to: str | None, conv_id: str | None) -> Conversation:
        """The conversation ``session`` may write to, creating a DM on first use.

        A trusted session (the application's backend, through the server API) is
        not held to membership, the DM policy or blocks.
        """
        user, trusted = session.user, session.trusted
        # The sender's social record is then cached for the fan-out after commit.
        await self.social.graph.record(user)
        if to is not None:
            if to == user:
                raise RequestError.bad("you cannot send a direct message to yourself")
            if not trusted:
                await self._check_dm(user, to)
            return await self._dm(user, to)
        assert conv_id is not None
        conv = await self.convs.joined(conv_id, user, trusted=trusted)
        if conv is None:
            raise RequestError(ErrorCode.FORBIDDEN, NO_ACCESS)
        if conv.kind == "dm" and not trusted:
            await self._check_dm(user, next((u for u in conv.members if u != user), user))
        return conv

    async def may_reach(self, sender: str, recipient: str) -> bool:
        """Whether ``sender`` may write to ``recipient`` directly or add them to a group.

        No block either way, and the DM policy (or the embedding app's hook) consents.
        A refusal is decided again after the sender's record is reread (the policy
        asked again too): another node may have just made them friends, or lifted a block.
        """
        if await self._may_dm(sender, recipient):
            return True
        return await self.social.graph.second_look(sender) and await self._may_dm(sender, recipient)

    async def _may_dm(self, sender: str, recipient: str) -> bool:
        return (not await self.social.graph.blocked_either(sender, recipient)
                and await self.policy.may_dm(sender, recipient))

    async def _check_dm(self, sender: str, recipient: str) -> None:
        """A block either way, or the policy, refuses; both answer alike."""
        if not await self.may_reach(sender, recipient):
            # The same answer as for a conversation you are not in: no enumeration of
            # who exists, who blocked you, or which conversations there are.
            raise RequestError(ErrorCode.FORBIDDEN, NO_ACCESS)

    async def _dm(self, a: str, b: str) -> Conversation:
        conv_id = dm_id(a, b)
        conv = await self.convs.get(conv_id)
        if conv is not None:
            return conv
        created = await self.store.ensure_dm(conv_id, a, b, self.now_ms())
        conv = await self.convs.get(conv_id)
        if conv is None:
            raise RequestError(ErrorCode.UNAVAILABLE, "conversation could not be created")
        if created:
            self.convs.changed(conv)
            self.membership_changed(conv_id, (a, b))
            self.announce(conv, (a, b))
        return conv

    async def _reply_target(self, conv: Conversation, reply: f.Reply | None) -> dict[str, int] | None:
        if reply is None:
            return None
        if not 0 < reply.seq <= conv.last_seq:
            raise RequestError.bad("'reply.seq' names no message of this conversation")
        if reply.at_ms is not None:
            target = await self.store.get_message(conv.conv, reply.seq)
            duration = (target.video or {}).get("duration_ms") if target else None
            if target is None or target.kind != "video":
                raise RequestError.bad("'reply.at_ms' is for replies to a video share")
            if duration is not None and reply.at_ms > duration:
                raise RequestError.bad("'reply.at_ms' lies beyond the video's duration")
        return reply.to_wire()

    def _submit(self, item: NewMessage, ticket: _Ticket) -> None:
        try:
            self.writer.submit(item, ticket)
        except WriterFull as exc:
            raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None

    async def _send(self, session: Session, req: f.Send) -> None:
        if not session.trusted:
            self.rates.check(session, "send", req.cmid)
        refuse_nul(req.text, "text")
        conv = await self._writable(session, req.to, req.conv)
        reply = await self._reply_target(conv, req.reply)
        card = (await self.resolver.resolve(req.video)).to_wire() if req.video else None
        item = NewMessage(conv.conv, session.user, req.cmid, req.kind, self.now_ms(), req.text,
                          card, reply)
        self._submit(item, _Ticket(session, req.id, received=time.perf_counter()))

    async def _share(self, session: Session, req: f.Share) -> None:
        if not session.trusted:
            self.rates.check(session, "send", req.cmid, len(req.to) + len(req.convs))
        refuse_nul(req.text, "text")
        targets = [("to", u) for u in req.to] + [("conv", c) for c in req.convs]
        tracker = _ShareReply(session, req.id, [{key: t} for key, t in targets], 0)
        card = (await self.resolver.resolve(req.video)).to_wire()
        queued: list[tuple[int, NewMessage]] = []
        for index, (key, target) in enumerate(targets):
            try:
                conv = await (self._writable(session, target, None) if key == "to"
                              else self._writable(session, None, target))
            except RequestError as exc:
                tracker.results[index]["error"] = str(exc.code)
                continue
            tracker.results[index]["conv"] = conv.conv
            queued.append((index, NewMessage(conv.conv, session.user, req.cmid, "video",
                                             self.now_ms(), req.text, card)))
        tracker.remaining = len(queued) + 1  # +1 holds the reply until all are queued
        for index, item in queued:
            try:
                self.writer.submit(item, _Ticket(session, req.id, tracker, index,
                                                 received=time.perf_counter()))
            except WriterFull:
                tracker.settle(index, error=str(ErrorCode.UNAVAILABLE))
        tracker.settle(None)

    def _committed(self, tickets: Sequence[_Ticket], results: Sequence[Appended | None]) -> None:
        """After a commit: answer each sender, then fan each new message out.

        Each message, and its answer apart from its fan-out, stands alone: one that
        raises is logged and counted, and the rest of the batch is still answered and
        delivered. Otherwise their clients would wait in vain for messages that are stored.
        """
        for ticket, result in zip(tickets, results, strict=True):
            try:  # answered first: a fan-out that raises cannot take the ok with it
                self._answer_committed(ticket, result)
            except Exception:
                self._after_commit_failed("answer", ticket)
            if result is not None and not result.duplicate:
                try:
                    self._publish_committed(ticket, result.message)
                except Exception:
                    self._after_commit_failed("fan-out", ticket)

    def _answer_committed(self, ticket: _Ticket, result: Appended | None) -> None:
        if result is None:
            self._answer_error(ticket, ErrorCode.NOT_FOUND, NO_ACCESS)
            return
        msg = result.message
        conv = self.convs.peek(msg.conv)
        if conv is None:
            self.convs.outdated()  # a load racing this commit must not cache an old last_seq
        elif msg.seq > conv.last_seq:
            conv.last_seq = msg.seq
        if ticket.share is not None:
            ticket.share.settle(ticket.index, seq=msg.seq, ts=msg.ts)
        elif ticket.session is not None:
            ticket.session.reply(events.ok(ticket.request_id, conv=msg.conv, seq=msg.seq, ts=msg.ts))

    def _publish_committed(self, ticket: _Ticket, msg: StoredMessage) -> None:
        if self.social.graph.peek(msg.sender) is None:
            # The sender's record left the cache since the send was checked (another
            # node's change, or a load that overlapped a write): without it, who blocks
            # the sender is unknown, and a blocker must never get the body. Rare: load it.
            async def later() -> None:
                record = await self.social.graph.record(msg.sender)
                self._publish_now(ticket, msg, record.blocked_by)
            self.spawn(later())
            return
        self._publish_now(ticket, msg)

    def _publish_now(self, ticket: _Ticket, msg: StoredMessage,
                     blockers: AbstractSet[str] | None = None) -> None:
        conv = self.convs.peek(msg.conv)
        self._fan_out(msg, conv, ticket.session, blockers)
        if self.listeners:
            self.emit("message.created", {
                **msg.to_wire(), "members": list(conv.members) if conv else [],
                "share": ticket.share is not None})
        self.metrics.delivery.observe(time.perf_counter() - ticket.received)

    def _after_commit_failed(self, step: str, ticket: _Ticket) -> None:
        session = ticket.session.id if ticket.session is not None else "-"
        log.exception("%s: the %s of a message after its commit failed; the rest of the batch goes on",
                      session, step)
        self.metrics.after_commit_failures.inc()

    def _fan_out(self, msg: StoredMessage, conv: Conversation | None, origin: Session | None,
                 blockers: AbstractSet[str] | None = None) -> None:
        if conv is not None:
            self._deliver_message(msg, conv.members, origin, blockers)
            return
        # Evicted from the cache between validation and commit: rare, load it again.
        async def later() -> None:
            loaded = await self.convs.get(msg.conv)
            if loaded is not None:
                self._deliver_message(msg, loaded.members, origin, blockers)
        self.spawn(later())  # held until done, and a failure is logged

    def _deliver_message(self, msg: StoredMessage, members: Any, origin: Session | None,
                         blockers: AbstractSet[str] | None = None) -> None:
        """One encode for everyone; members who block the sender get the body-less stub
        (``blockers``: who blocks the sender, when the caller has it; else the cache's)."""
        self.metrics.fanout.observe(len(members))
        data = encode({"t": "msg", **msg.to_wire()})
        if blockers is None:
            record = self.social.graph.peek(msg.sender)
            blockers = record.blocked_by if record is not None else frozenset()
        conv, seq = msg.conv, msg.seq
        if not blockers or blockers.isdisjoint(members):
            self.deliver(members, data, skip=origin, conv=conv, seq=seq)
            return
        self.deliver([u for u in members if u not in blockers], data, skip=origin, conv=conv, seq=seq)
        stub = encode({"t": "msg", **msg.to_wire(hidden=True)})
        self.deliver([u for u in members if u in blockers], stub, skip=origin, conv=conv, seq=seq)

    def _failed(self, tickets: Sequence[_Ticket], exc: Exception) -> None:
        for ticket in tickets:
            try:
                self._answer_error(ticket, ErrorCode.UNAVAILABLE, NOT_STORED)
            except Exception:
                self._after_commit_failed("answer", ticket)

    @staticmethod
    def _answer_error(ticket: _Ticket, code: ErrorCode, message: str) -> None:
        if ticket.share is not None:
            ticket.share.settle(ticket.index, error=str(code))
        elif ticket.session is not None:
            ticket.session.reply(events.error(ticket.request_id, code, message))

    async def _history(self, session: Session, req: f.History) -> None:
        if not session.trusted:
            self.rates.check(session, "history", (req.conv, req.before, req.limit))
        conv = await self.convs.joined(req.conv, session.user, trusted=session.trusted)
        if conv is None:
            raise RequestError(ErrorCode.FORBIDDEN, NO_ACCESS)
        page = await self.store.history(req.conv, req.before, req.limit)
        blocking = (await self.social.graph.record(session.user)).blocking
        reactions: dict[int, list[dict[str, Any]]] = {}
        for reaction in await self.store.reactions(req.conv, [m.seq for m in page], session.user):
            reactions.setdefault(reaction.seq, []).append(reaction.to_wire())
        messages = []
        for m in page:
            hidden = m.sender in blocking
            messages.append({**m.to_wire(hidden=hidden),
                             "reactions": [] if hidden else reactions.get(m.seq, [])})
        data = encode(events.ok(req.id, messages=messages))
        room = self.config.send_buffer_bytes // 2
        if len(data) > room:
            # A page of long messages must not overflow the send buffer (4009):
            # keep the newest that fit; the client goes on with before=first seq.
            total, keep = 64, 0
            for message in reversed(messages):
                total += len(encode(message))
                if keep and total > room:
                    break
                keep += 1
            data = encode(events.ok(req.id, messages=messages[len(messages) - keep:]))
        session.push_now(data)

    # -- session upkeep -----------------------------------------------------

    async def _refresh(self, session: Session, req: f.Refresh) -> None:
        identity = self.verifier.verify(req.token)
        if identity.user != session.user:
            raise RequestError(ErrorCode.UNAUTHORIZED, "the new token is for another user")
        await self._check_revoked(identity)
        session.issued_at_ms = identity.issued_at_ms
        session.expire_at(identity.expires_at, self.clock())
        session.reply(events.ok(req.id, expires_at=int(identity.expires_at * 1000)))

    async def _check_revoked(self, identity: Identity) -> None:
        before = await self.store.revoked_before(identity.user)
        if revoked(identity.issued_at_ms, before):
            raise RequestError(ErrorCode.UNAUTHORIZED, "token revoked")

    async def revoke(self, user: str, before_ms: int) -> int:
        """Refuse ``user``'s tokens issued before ``before_ms`` on every node; close the
        sessions here using one and tell the other nodes. Returns how many closed here."""
        return await self.revocations.revoke(user, before_ms)

    def disconnect_user(self, user: str) -> int:
        """Close every device of ``user`` here and on the other nodes (4001: get a new token).
        Returns how many closed here: the other nodes' count is not waited for."""
        return self.revocations.disconnect(user)

    async def video_unavailable(self, video_id: str) -> int:
        """Turn every share of ``video_id`` into a tombstone and tell the members now."""
        found = await self.store.messages_with_video(video_id)
        for conv_id, seq in found:
            await self.store.unsend(conv_id, seq)
            conv = await self.convs.get(conv_id)
            if conv is not None:
                event = {"t": "unsent", "conv": conv_id, "seq": seq, "reason": "video_unavailable"}
                self.deliver(conv.members, encode(event), conv=conv_id)
        return len(found)

    async def _ping(self, session: Session, req: f.Ping) -> None:
        if req.id is not None:
            session.reply(events.ok(req.id, server_time=self.now_ms()))

    async def _hello_again(self, session: Session, req: f.Hello) -> None:
        raise RequestError.bad("this connection has already said hello")
