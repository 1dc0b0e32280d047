"""The Clipwire client: one logical session over reconnecting WebSocket connections.

``connect()`` opens a connection (offering the ``clipwire.v1`` subprotocol), says
hello and keeps the welcome. A reader task matches ``ok``/``error`` replies to the
requests waiting for them by ``id`` and files hub events for delivery (see
:mod:`.delivery`). When the connection drops, or the hub closes it with a code
that allows it, the client reconnects with jittered exponential backoff, says
hello with ``resume`` set to the highest contiguous seq it holds per
conversation, and sends again every request that is safe to repeat: a ``send``
or ``share`` goes out with the same ``cmid``, and the hub answers it with the
first result, so the caller gets exactly one answer and one stored message.
Requests the hub rate-limits wait in a queue and go out in call order at the
announced rates (see :mod:`.pacing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Final

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Subprotocol

from clipwire.protocol import (
    PROTOCOL_VERSION,
    SUBPROTOCOL,
    CloseCode,
    ErrorCode,
    FrameError,
    Limits,
    Reply,
    VideoCard,
    decode,
    encode,
)

from .delivery import Delivery, _End
from .errors import (
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    RateLimited,
    RequestFailed,
    RequestTimeout,
    TooLarge,
    Unauthorized,
)
from .friends import Friends
from .models import (
    ClientEvent,
    Conversation,
    ConversationChanged,
    Disconnected,
    Event,
    FriendEvent,
    FriendRequest,
    Message,
    Presence,
    ReadReceipt,
    Reconnected,
    ShareResult,
    Unsent,
    WatchState,
    card_from_wire,
    event_from_wire,
)
from .pacing import KIND_OF, Pacer, share_cost

__all__ = ["RECONNECT_CODES", "REPEATABLE", "Client", "TokenProvider", "connect", "new_cmid"]

log = logging.getLogger("clipwire.client")

TokenProvider = Callable[[], Awaitable[str]]

#: Close codes after which the client reconnects (4001 too, if it has a token_provider).
RECONNECT_CODES: Final = frozenset({
    CloseCode.GOING_AWAY, 1006, CloseCode.INTERNAL, 1012, 1013, CloseCode.HELLO_TIMEOUT,
    CloseCode.RATE_LIMITED, CloseCode.SLOW_CONSUMER, CloseCode.DRAINING,
})
#: Request types sent again after a reconnect if the first answer was lost: ``send``
#: and ``share`` are deduplicated by ``cmid``; the rest read, or set a state (the hub
#: answers a repeat of ``unsend`` or a ``friend.*`` request that already took effect with ok).
REPEATABLE: Final = frozenset({
    "send", "share", "history", "ping", "presence", "read", "react", "unsend", "group.add",
    "group.remove", "friend.request", "friend.accept", "friend.remove", "block", "unblock", "watch",
})
_PAUSE_AFTER: Final = {int(CloseCode.RATE_LIMITED): 5.0}
_AT_ONCE: Final = frozenset({int(CloseCode.DRAINING), int(CloseCode.UNAUTHORIZED)})
_MAX_INCOMING = 16 * 1024 * 1024
# What the hub sends (history pages, long welcome lists) is bounded by this, not by
# the limits the hub enforces on what clients send.
_INCOMING: Final = Limits(max_frame_bytes=_MAX_INCOMING, max_depth=32, max_str_len=_MAX_INCOMING,
                          max_array_len=1 << 20, max_map_len=1 << 20)
_OWN_CMIDS_KEPT = 4096


@dataclass(eq=False, slots=True)
class _Call:
    id: int
    t: str
    data: bytes
    future: asyncio.Future[dict[str, Any]]
    repeatable: bool
    on_ok: Callable[[dict[str, Any]], None] | None
    sent_on: int | None = None  # connection number it was written to; None: not (yet) sent
    kind: str = ""  # the rate-limit kind it spends ("": not paced)
    cost: int = 0
    keys: frozenset[str] = frozenset()  # conversations it writes to, for ordering
    # The request's timeout runs only while it is out of the pacing queue.
    timer: asyncio.Timeout | None = None
    left_s: float = 0.0
    armed_at: float | None = None

    def done(self) -> bool:
        return self.future.done()

    def arm(self, now: float) -> None:
        timer = self.timer
        if self.armed_at is None and timer is not None and not timer.expired():
            self.armed_at = now
            timer.reschedule(now + self.left_s)

    def disarm(self, now: float) -> None:
        timer = self.timer
        if self.armed_at is not None and timer is not None and not timer.expired():
            self.left_s -= now - self.armed_at
            self.armed_at = None
            timer.reschedule(None)


def new_cmid() -> str:
    """A fresh client message id."""
    return uuid.uuid4().hex


class Client:
    """A Clipwire session. Create it with :func:`connect`.

    After the hello, ``user``, ``session``, ``server_time``, ``limits``,
    ``conversations`` (conv id to :class:`Conversation`, with read marker and
    watch-together state), ``friends`` (user to :class:`Presence`),
    ``friend_requests`` (pending :class:`FriendRequest`, both directions) and the
    raw ``welcome`` are available; the client keeps them up to date from events.

    ``async for event in client`` yields :class:`Message` (each ``(conv, seq)``
    once, in seq order per conversation; not the messages this client sent, which
    its send calls return; tombstones and hidden stubs included, so seqs have no
    holes), :class:`ConversationChanged`, :class:`Presence`, :class:`Typing`,
    :class:`ReadReceipt`, :class:`Reaction`, :class:`Unsent`, :class:`WatchState`,
    :class:`FriendEvent`, :class:`Disconnected`, :class:`Reconnected`, and
    :class:`Event` for event types it does not know. After a reconnect, friend,
    presence and watch changes the new welcome reveals follow :class:`Reconnected`
    as events too. Iteration ends after :meth:`aclose`, and raises
    :class:`ClientClosed` when the hub ended the session for good (e.g. 4001
    without a ``token_provider``, or ``reconnect=False``).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        device: str | None = None,
        token_provider: TokenProvider | None = None,
        reconnect: bool = True,
        resume: Mapping[str, int] | None = None,
        request_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        backoff_initial: float = 0.25,
        backoff_max: float = 10.0,
        max_reconnect_attempts: int | None = None,
        max_queued_events: int = 1000,
        max_buffered_messages: int = 1000,
        max_queued_requests: int = 10_000,
        hole_grace: float = 0.25,
        new_conversation_backfill: int = 100,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
    ) -> None:
        if token is None and token_provider is None:
            raise ValueError("give a token, a token_provider, or both")
        self.url = url
        self.device = device
        self._token = token
        self._token_provider = token_provider
        self._reconnect = reconnect
        self._initial_resume = dict(resume or {})
        self.request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._backoff = (backoff_initial, backoff_max)
        self._max_attempts = max_reconnect_attempts
        self._backfill = new_conversation_backfill
        self._ping = (ping_interval, ping_timeout)

        self.user = ""
        self.session = ""
        self.server_time = 0
        self.limits: dict[str, int | float] = {}
        self.conversations: dict[str, Conversation] = {}
        self._friends = Friends()
        self.welcome: dict[str, Any] = {}
        self.subprotocol: str | None = None

        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._own_cmids: OrderedDict[str, None] = OrderedDict()
        self._ws: ClientConnection | None = None
        self._conn_no = 0
        self._online = asyncio.Event()
        self._ended = asyncio.Event()  # set once closed for good
        self._runner: asyncio.Task[None] | None = None
        self._final: ClientClosed | None = None
        self._closed_by_user = False
        # Changes a reconnect's welcome revealed, emitted right after Reconnected.
        self._after_welcome: list[ClientEvent] = []
        self._delivery = Delivery(fetch=self._fetch, is_own=self._is_own,
                                  max_queued=max_queued_events, max_buffered=max_buffered_messages,
                                  hole_grace_s=hole_grace)
        self._pacer = Pacer(self._release_paced, max_queued_requests)

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> Client:
        """Connect and say hello; raise :class:`Unauthorized`, :class:`ConnectFailed`, ..."""
        if self._final is not None:
            raise ClientClosed(self._final.code, self._final.reason)
        if self._runner is not None:
            return self
        if self._token is None:
            assert self._token_provider is not None
            self._token = await self._token_provider()
        try:
            ws = await self._connect_once(initial=True)
        except Unauthorized:
            if self._token_provider is None:
                raise
            self._token = await self._token_provider()
            ws = await self._connect_once(initial=True)
        await self._go_online(ws)
        self._runner = asyncio.get_running_loop().create_task(self._run(ws), name="clipwire-client")
        return self

    async def aclose(self) -> None:
        """Close the connection, fail what is still waiting, end iteration. Idempotent."""
        if self._closed_by_user:
            return
        self._closed_by_user = True
        if self._final is None:
            self._final = ClientClosed(CloseCode.NORMAL, "closed by the client")
        self._ended.set()
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        ws, self._ws = self._ws, None
        self._online.clear()
        if ws is not None:
            await ws.close()
        self._fail_all(self._final)
        await self._pacer.close()
        self._delivery.end()
        await self._delivery.close()

    async def __aenter__(self) -> Client:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    @property
    def connected(self) -> bool:
        """True while a connection is up and past its hello."""
        return self._online.is_set()

    @property
    def closed(self) -> bool:
        return self._final is not None

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the client is connected (again); raise :class:`ClientClosed` if it never will."""
        async with asyncio.timeout(timeout):
            while not self._online.is_set():
                if self._final is not None:
                    raise ClientClosed(self._final.code, self._final.reason)
                waiters = [asyncio.ensure_future(self._online.wait()),
                           asyncio.ensure_future(self._ended.wait())]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()

    @property
    def friends(self) -> dict[str, Presence]:
        """Your friends and whether they are online, kept current from events."""
        return self._friends.friends

    @property
    def friend_requests(self) -> list[FriendRequest]:
        """Pending friend requests: ``direction`` ``"in"`` from them, ``"out"`` from you."""
        return self._friends.requests

    @property
    def resume_state(self) -> dict[str, int]:
        """Per conversation, the highest seq up to which every message was received.

        Persist it and pass it as ``connect(resume=...)`` to pick up where you left off.
        """
        return {conv: seq for conv, seq, _ in self._delivery.resume_points()}

    @property
    def dropped_events(self) -> int:
        """Non-message events dropped because the event queue was full."""
        return self._delivery.dropped_events

    @property
    def duplicates_dropped(self) -> int:
        """Messages that arrived again and were not delivered a second time."""
        return self._delivery.duplicates

    # -- events -------------------------------------------------------------

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> ClientEvent:
        if self._closed_by_user:
            raise StopAsyncIteration
        queue = self._delivery.queue
        if queue.empty() and self._delivery.ended:
            self._end_of_events()
        item = await queue.get()
        if isinstance(item, _End):
            if not queue.full():
                queue.put_nowait(item)  # for any other iterator
            self._end_of_events()
            raise AssertionError("unreachable")
        return item

    def _end_of_events(self) -> None:
        final = self._final
        if final is None or self._closed_by_user:
            raise StopAsyncIteration
        raise ClientClosed(final.code, final.reason)

    # -- requests -----------------------------------------------------------

    async def request(self, t: str, /, *, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send request ``t`` with ``fields``; return the ``ok`` result (without ``t``/``id``).

        Raises a :class:`RequestFailed` subclass for an ``error`` answer,
        :class:`RequestTimeout` after ``timeout`` seconds (default ``request_timeout``),
        :class:`ConnectionLost` if the connection dropped under a request that is not
        safe to repeat, :class:`ClientClosed` once the client is closed. Fields that
        are ``None`` are left out. While reconnecting, requests wait for the connection.
        """
        return await self._call(t, fields, timeout=timeout)

    async def send_text(self, text: str, *, to: str | None = None, conv: str | None = None,
                        reply: int | Reply | None = None, cmid: str | None = None,
                        timeout: float | None = None) -> Message:
        """Send a text message to user ``to`` (a DM) or to conversation ``conv``.

        Returns the stored :class:`Message`. If the connection drops meanwhile, the
        send is repeated with the same ``cmid`` after reconnecting; pass your own
        ``cmid`` to be able to repeat it yourself after a :class:`RequestTimeout`.
        """
        return await self._send(to=to, conv=conv, kind="text", text=text, video=None, reply=reply,
                                cmid=cmid, timeout=timeout)

    async def send_video(self, video: VideoCard | Mapping[str, Any], *, to: str | None = None,
                         conv: str | None = None, text: str | None = None,
                         reply: int | Reply | None = None, cmid: str | None = None,
                         timeout: float | None = None) -> Message:
        """Send one video card (with an optional note) to ``to`` or ``conv``."""
        return await self._send(to=to, conv=conv, kind="video", text=text, video=video, reply=reply,
                                cmid=cmid, timeout=timeout)

    async def share_video(self, video: VideoCard | Mapping[str, Any], *, to: Iterable[str] | str = (),
                          convs: Iterable[str] | str = (), text: str | None = None,
                          cmid: str | None = None, timeout: float | None = None) -> list[ShareResult]:
        """Share a video card with users ``to`` (DMs) and conversations ``convs`` at once.

        Returns one :class:`ShareResult` per target, in order (``to`` first); a target
        that was refused has ``error`` set instead of ``seq``.
        """
        targets_to = (to,) if isinstance(to, str) else tuple(to)
        targets_convs = (convs,) if isinstance(convs, str) else tuple(convs)
        if not targets_to and not targets_convs:
            raise ValueError("share_video needs at least one target in 'to' or 'convs'")
        cmid = cmid or new_cmid()
        self._remember_cmid(cmid)

        def own(result: dict[str, Any]) -> None:
            for item in result.get("results") or ():
                if isinstance(item, dict) and isinstance(item.get("seq"), int) and item.get("conv"):
                    self._own_stored(str(item["conv"]), item["seq"])

        result = await self._call("share", {
            "video": _card_wire(video), "to": list(targets_to) or None,
            "convs": list(targets_convs) or None, "text": text, "cmid": cmid,
        }, timeout=timeout, on_ok=own)
        return [ShareResult.from_wire(item) for item in result.get("results") or ()
                if isinstance(item, dict)]

    async def history(self, conv: str, before: int | None = None, limit: int = 50, *,
                      timeout: float | None = None) -> list[Message]:
        """Up to ``limit`` (1..100) messages of ``conv`` before seq ``before`` (newest page
        without it), oldest first."""
        result = await self._call("history", {"conv": conv, "before": before, "limit": limit},
                                  timeout=timeout)
        return [Message.from_wire(m) for m in result.get("messages") or () if isinstance(m, dict)]

    async def create_group(self, members: Iterable[str], title: str = "", *,
                           timeout: float | None = None) -> str:
        """Create a group with you as owner; return its conversation id.

        The group is in :attr:`conversations` when this returns (the hub's ``conv``
        event, which follows, brings the same summary as a :class:`ConversationChanged`).
        """
        others = [m for m in dict.fromkeys(members) if m != self.user]

        def created(result: dict[str, Any]) -> None:
            conv_id = str(result["conv"])
            refused = set(result.get("refused", ()))  # the hub's policy left them out
            if conv_id not in self.conversations:
                members = (self.user, *(m for m in others if m not in refused))
                self.conversations[conv_id] = Conversation(
                    conv_id, "group", title=title, members=members, owner=self.user)
            if not self._delivery.knows(conv_id):
                self._delivery.track(conv_id, 0, 0, urgent=False)

        result = await self._call("group.create", {"members": others, "title": title},
                                  timeout=timeout, on_ok=created)
        return str(result["conv"])

    async def add_members(self, conv: str, members: Iterable[str], *,
                          timeout: float | None = None) -> list[str]:
        """Add members to a group; return those the hub refused (not your friends, under
        its default policy). ``create_group`` leaves them out of the group alike."""
        result = await self._call("group.add", {"conv": conv, "members": list(members)},
                                  timeout=timeout)
        return [str(u) for u in result.get("refused", ())]

    async def remove_members(self, conv: str, members: Iterable[str], *,
                             timeout: float | None = None) -> None:
        """Remove members from a group (owner only)."""
        await self._call("group.remove", {"conv": conv, "members": list(members)}, timeout=timeout)

    async def leave_group(self, conv: str, *, timeout: float | None = None) -> None:
        await self._call("group.leave", {"conv": conv}, timeout=timeout)

    async def ping(self, *, timeout: float | None = None) -> int:
        """Round trip to the hub; returns its clock (ms since the epoch)."""
        result = await self._call("ping", {}, timeout=timeout)
        return int(result.get("server_time", 0))

    async def typing(self, conv: str) -> None:
        """Signal that the user is typing in ``conv`` (no answer; dropped while disconnected)."""
        ws = self._ws
        if ws is not None and self._online.is_set():
            with contextlib.suppress(ConnectionClosed):
                await ws.send(encode({"t": "typing", "conv": conv}))

    # -- social layer -------------------------------------------------------

    async def read(self, conv: str, seq: int, *, timeout: float | None = None) -> int:
        """Mark ``conv`` read up to ``seq``; returns the stored marker (it never moves back)."""
        def marked(result: dict[str, Any]) -> None:
            marker = result.get("read_seq")
            if isinstance(marker, int):
                self._set_read(conv, marker)

        result = await self._call("read", {"conv": conv, "seq": seq}, timeout=timeout, on_ok=marked)
        return int(result.get("read_seq", seq))

    async def react(self, conv: str, seq: int, emoji: str, on: bool = True, at_ms: int | None = None,
                    *, timeout: float | None = None) -> None:
        """React to message ``seq`` with ``emoji`` (``on=False`` takes it back).

        ``at_ms`` pins the reaction to a moment of a video share. One reaction per
        emoji and user: reacting again with another ``at_ms`` moves it.
        """
        await self._call("react", {"conv": conv, "seq": seq, "emoji": emoji, "on": on,
                                   "at_ms": at_ms if on else None}, timeout=timeout)

    async def reply_to(self, conv: str, seq: int, text: str, at_ms: int | None = None, *,
                       cmid: str | None = None, timeout: float | None = None) -> Message:
        """Reply to message ``seq`` of ``conv``; ``at_ms``: to that moment of its video."""
        return await self.send_text(text, conv=conv, reply=Reply(seq, at_ms), cmid=cmid,
                                    timeout=timeout)

    async def unsend(self, conv: str, seq: int, *, timeout: float | None = None) -> None:
        """Take back your own message ``seq``: the hub keeps a tombstone, other members
        get an :class:`Unsent` event."""
        await self._call("unsend", {"conv": conv, "seq": seq}, timeout=timeout)

    async def friend_request(self, user: str, *, timeout: float | None = None) -> None:
        """Ask ``user`` to be friends (accepts instead, if they asked you first)."""
        await self._call("friend.request", {"user": user}, timeout=timeout)

    async def accept_friend(self, user: str, *, timeout: float | None = None) -> None:
        """Accept ``user``'s pending request (:class:`NotFound` if there is none)."""
        await self._call("friend.accept", {"user": user}, timeout=timeout)

    async def remove_friend(self, user: str, *, timeout: float | None = None) -> None:
        """End a friendship, or withdraw or decline a pending request, with ``user``."""
        await self._call("friend.remove", {"user": user}, timeout=timeout)

    async def block(self, user: str, *, timeout: float | None = None) -> None:
        """Block ``user``: no DMs, presence or typing either way; their group messages
        reach you as hidden stubs. Ends a friendship or pending request."""
        await self._call("block", {"user": user}, timeout=timeout)

    async def unblock(self, user: str, *, timeout: float | None = None) -> None:
        """Lift your block on ``user`` (a friendship it ended stays ended)."""
        await self._call("unblock", {"user": user}, timeout=timeout)

    async def presence(self, users: Iterable[str], *, timeout: float | None = None) -> list[Presence]:
        """The presence of ``users``, who this connection then watches (:class:`Presence` events).

        Users you may not see (strangers, blocks) are answered offline, never seen.
        Watching ends with the connection: ask again after a :class:`Reconnected`.
        """
        result = await self._call("presence", {"users": list(users)}, timeout=timeout)
        states = [Presence.from_wire(u) for u in result.get("users") or () if isinstance(u, dict)]
        self._friends.seen(states)
        return states

    async def watch(self, conv: str, video_id: str, pos_ms: int, playing: bool, *,
                    timeout: float | None = None) -> WatchState:
        """Set ``conv``'s watch-together state (last writer wins); returns it as stored."""
        result = await self._call("watch", {"conv": conv, "video_id": video_id, "pos_ms": pos_ms,
                                            "playing": playing}, timeout=timeout)
        state = WatchState(conv, self.user, video_id, pos_ms, playing, int(result.get("ts", 0)))
        self._set_watch(state)
        return state

    async def refresh(self, token: str, *, timeout: float | None = None) -> int:
        """Swap in a new token before the current one expires; returns its expiry (ms).

        The new token is also the one used for later reconnects.
        """
        result = await self._call("refresh", {"token": token}, timeout=timeout)
        self._token = token
        return int(result.get("expires_at", 0))

    # -- request machinery --------------------------------------------------

    async def _send(self, *, to: str | None, conv: str | None, kind: str, text: str | None,
                    video: VideoCard | Mapping[str, Any] | None, reply: int | Reply | None,
                    cmid: str | None, timeout: float | None) -> Message:
        if (to is None) == (conv is None):
            raise ValueError("give exactly one of 'to' (a user, for a DM) and 'conv'")
        reply_value = Reply(reply) if isinstance(reply, int) else reply
        cmid = cmid or new_cmid()
        self._remember_cmid(cmid)
        result = await self._call("send", {
            "to": to, "conv": conv, "kind": kind, "text": text,
            "video": None if video is None else _card_wire(video),
            "reply": None if reply_value is None else reply_value.to_wire(), "cmid": cmid,
        }, timeout=timeout, on_ok=lambda r: self._own_stored(str(r["conv"]), int(r["seq"])))
        return Message(conv=str(result["conv"]), seq=int(result["seq"]), sender=self.user,
                       ts=int(result.get("ts", 0)), kind=kind, text=text,
                       video=card_from_wire(_card_wire(video)) if video is not None else None,
                       reply=reply_value, cmid=cmid)

    async def _call(self, t: str, fields: Mapping[str, Any], *, timeout: float | None = None,
                    on_ok: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        if self._final is not None:
            raise ClientClosed(self._final.code, self._final.reason)
        if t == "hello":
            raise ValueError("the client says hello itself")
        call_id = next(self._ids)
        frame = {"t": t, "id": call_id, **{k: v for k, v in fields.items() if v is not None}}
        data = encode(frame)
        max_bytes = int(self.limits.get("max_frame_bytes", 64 * 1024))
        if len(data) > max_bytes:
            raise TooLarge(ErrorCode.TOO_LARGE,
                           f"the frame is {len(data)} bytes; the hub takes at most {max_bytes}", t)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        call = _Call(call_id, t, data, future, t in REPEATABLE, on_ok)
        self._pace(call, fields)
        self._calls[call_id] = call
        seconds = self.request_timeout if timeout is None else timeout
        call.left_s = seconds
        try:
            async with asyncio.timeout(None) as timer:
                call.timer = timer
                if call.kind:
                    self._pacer.enqueue(call)
                else:
                    call.arm(loop.time())
                    if self._online.is_set():
                        await self._write(call)
                return await future
        except TimeoutError:
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()
            raise RequestTimeout(t, seconds) from None
        finally:
            self._calls.pop(call_id, None)
            if call.kind:
                self._pacer.answered(call)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved, even if nobody waits for it any more

    def _pace(self, call: _Call, fields: Mapping[str, Any]) -> None:
        """Mark a rate-limited request for the pacing queue, or refuse it at once if the queue is full."""
        kind = KIND_OF.get(call.t)
        if kind is None:
            return
        keys: list[str] = []
        if call.t in ("send", "share"):
            for user in _listed(fields.get("to")):
                keys.append(self._dm_key(user))
            keys.extend(_listed(fields.get("conv")) + _listed(fields.get("convs")))
        call.kind, call.keys = kind, frozenset(keys)
        call.cost = 1
        if call.t == "share":
            call.cost = share_cost(_listed(fields.get("to")), _listed(fields.get("convs")))
        if self._pacer.full():
            raise RateLimited(ErrorCode.RATE_LIMITED, f"{self._pacer.max_queued} requests already "
                              "wait for the hub's rate limits (max_queued_requests)", call.t)

    def _dm_key(self, user: str) -> str:
        """The ordering key of a DM by user: its conversation id once known."""
        for conv in self.conversations.values():
            if conv.peer == user:
                return conv.conv
        return "@" + user

    async def _release_paced(self, call: Any) -> None:
        """The pacer lets ``call`` go: its timeout runs from now."""
        assert isinstance(call, _Call)
        call.arm(asyncio.get_running_loop().time())
        await self._write(call)

    async def _write(self, call: _Call) -> None:
        ws = self._ws
        if ws is None or call.future.done():
            return
        call.sent_on = self._conn_no
        try:
            await ws.send(call.data)
        except ConnectionClosed:
            pass  # the reader sees the drop, then repeats or fails the call

    def _remember_cmid(self, cmid: str) -> None:
        self._own_cmids[cmid] = None
        self._own_cmids.move_to_end(cmid)
        while len(self._own_cmids) > _OWN_CMIDS_KEPT:
            self._own_cmids.popitem(last=False)

    def _is_own(self, msg: Message) -> bool:
        """A message this client sent itself (its caller got it as the send's result)."""
        return msg.sender == self.user and msg.cmid in self._own_cmids

    def _own_stored(self, conv: str, seq: int) -> None:
        self._seen_seq(conv, seq)
        self._delivery.on_own(conv, seq)

    def _fail_all(self, exc: ClientClosed) -> None:
        for call in list(self._calls.values()):
            if not call.future.done():
                call.future.set_exception(ClientClosed(exc.code, exc.reason))
        self._calls.clear()

    async def _fetch(self, conv: str, first: int, last: int) -> list[Message]:
        """Messages ``first..last`` of ``conv`` (at most one page), for hole filling.

        The hub may cut a page of long messages short, keeping the newest; ask
        again below what came until ``first`` is reached.
        """
        await self.wait_connected()
        got: list[Message] = []
        before = last + 1
        while before > first:
            page = await self.history(conv, before=before, limit=before - first)
            if not page:
                break
            got[:0] = page
            before = page[0].seq
        return got

    # -- connections --------------------------------------------------------

    async def _connect_once(self, *, initial: bool) -> ClientConnection:
        """Open a WebSocket, say hello, apply the welcome; return the open connection."""
        ping_interval, ping_timeout = self._ping
        try:
            ws = await ws_connect(
                self.url, subprotocols=[Subprotocol(SUBPROTOCOL)], open_timeout=self._connect_timeout,
                ping_interval=ping_interval, ping_timeout=ping_timeout, close_timeout=2.0,
                compression=None, max_size=_MAX_INCOMING, user_agent_header="clipwire-python",
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise ConnectFailed(f"cannot connect to {self.url}: {exc}") from exc
        try:
            resume = self._resume_for_hello(initial)
            hello: dict[str, Any] = {"t": "hello", "id": next(self._ids), "v": PROTOCOL_VERSION,
                                     "token": self._token}
            if self.device is not None:
                hello["device"] = self.device
            if resume:
                hello["resume"] = resume
            try:
                await ws.send(encode(hello))
                async with asyncio.timeout(self._connect_timeout):
                    reply = await self._await_reply(ws, hello["id"])
            except TimeoutError:
                raise ConnectFailed(f"no welcome from {self.url} in {self._connect_timeout:g} s") from None
            except ConnectionClosed as exc:
                raise ConnectFailed(f"{self.url} closed the connection during hello: {exc}") from exc
            if reply["t"] == "error":
                raise RequestFailed.from_wire(reply.get("code"), reply.get("message"), "hello")
            self.subprotocol = ws.subprotocol
            self._apply_welcome(reply, resume, initial=initial)
            return ws
        except BaseException:
            await ws.close()
            raise

    @staticmethod
    async def _await_reply(ws: ClientConnection, rid: int) -> dict[str, Any]:
        while True:
            data = await ws.recv()
            if isinstance(data, str):
                continue
            try:
                frame = decode(data, _INCOMING)
            except FrameError:
                continue
            if frame["t"] in ("ok", "error") and frame.get("id") == rid:
                return frame

    def _resume_for_hello(self, initial: bool) -> dict[str, int]:
        """The ``resume`` map: conversations known to be behind first, within the hub's bounds."""
        if initial:
            points = [(c, s, True) for c, s in self._initial_resume.items()]
        else:
            points = self._delivery.resume_points()
        points.sort(key=lambda p: not p[2])
        max_entries = max(1, int(self.limits.get("max_map_len", 1024)) - 8)
        budget = int(self.limits.get("max_frame_bytes", 64 * 1024)) // 2
        out: dict[str, int] = {}
        for conv, seq, _ in points:
            budget -= len(conv.encode()) + 12
            if len(out) >= max_entries or budget < 0:
                break
            out[conv] = seq
        return out

    def _apply_welcome(self, frame: dict[str, Any], resumed: dict[str, int], *, initial: bool) -> None:
        self._after_welcome = []
        self.welcome = {k: v for k, v in frame.items() if k not in ("t", "id")}
        self.user = str(frame.get("user", ""))
        self.session = str(frame.get("session", ""))
        self.server_time = int(frame.get("server_time", 0))
        limits = frame.get("limits")
        # Sizes are integers, rates (rate_send_per_s, ...) need not be.
        self.limits = ({k: v for k, v in limits.items()
                        if isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)}
                       if isinstance(limits, dict) else {})
        self._delivery.page = max(1, min(self._delivery.page,
                                         int(self.limits.get("max_history_limit", 100))))
        changed = self._friends.load(frame)
        if not initial:
            self._after_welcome.extend(changed)
        listed: dict[str, Conversation] = {}
        for item in frame.get("convs") or ():
            if isinstance(item, dict) and isinstance(item.get("conv"), str):
                conv = Conversation.from_wire(item)
                listed[conv.conv] = conv
        delivery = self._delivery
        for conv_id, conv in listed.items():
            if initial:
                start = min(self._initial_resume.get(conv_id, conv.last_seq), conv.last_seq)
                delivery.track(conv_id, start, conv.last_seq, urgent=conv_id not in resumed)
            elif delivery.knows(conv_id):
                delivery.raise_want(conv_id, conv.last_seq, urgent=conv_id not in resumed)
            else:
                # Created, or joined, while we were away: its messages are new to us.
                start = max(0, conv.last_seq - self._backfill)
                delivery.track(conv_id, start, conv.last_seq, urgent=True)
                self._after_welcome.append(ConversationChanged(conv))
            old_watch = (self.conversations[conv_id].watch
                         if not initial and conv_id in self.conversations else None)
            if (not initial and conv.watch is not None
                    and (old_watch is None or conv.watch.ts > old_watch.ts)):
                self._after_welcome.append(conv.watch)
        if not initial:
            for conv_id, old in self.conversations.items():
                if conv_id not in listed:
                    delivery.forget(conv_id)
                    self._after_welcome.append(ConversationChanged(old, removed=True))
        self.conversations = listed

    def _on_social(self, event: ClientEvent) -> ClientEvent:
        """Keep the client's state in step with a social event; return what to emit."""
        if isinstance(event, FriendEvent | Presence):
            return self._friends.apply(event)
        if isinstance(event, ReadReceipt) and event.user == self.user:
            self._set_read(event.conv, event.seq)
        elif isinstance(event, WatchState):
            self._set_watch(event)
        elif isinstance(event, Unsent):
            self._delivery.on_unsent(event.conv, event.seq)
        return event

    def _set_read(self, conv_id: str, marker: int) -> None:
        conv = self.conversations.get(conv_id)
        if conv is None or marker <= conv.read_seq:
            return
        unread = 0 if marker >= conv.last_seq else min(conv.unread, conv.last_seq - marker)
        self.conversations[conv_id] = replace(conv, read_seq=marker, unread=unread)

    def _set_watch(self, state: WatchState) -> None:
        conv = self.conversations.get(state.conv)
        if conv is not None and (conv.watch is None or state.ts >= conv.watch.ts):
            self.conversations[state.conv] = replace(conv, watch=state)

    async def _run(self, ws: ClientConnection) -> None:
        """Read, and reconnect when the connection ends, until closed for good."""
        try:
            while True:
                code, reason = await self._read(ws)
                self._go_offline(code, reason)
                will_retry = self._reconnect and (
                    code in RECONNECT_CODES
                    or (code == CloseCode.UNAUTHORIZED and self._token_provider is not None))
                log.info("connection closed (%s %s)%s", code, reason, "; reconnecting" if will_retry else "")
                if not will_retry:
                    self._finish(code, reason)
                    return
                self._delivery.emit(Disconnected(code, reason, reconnecting=True))
                reconnected = await self._reconnect_after(code, reason)
                if reconnected is None:
                    return
                ws, attempts = reconnected
                await self._go_online(ws)
                self._delivery.emit(Reconnected(self.session, attempts))
                changes, self._after_welcome = self._after_welcome, []
                for change in changes:
                    self._delivery.emit(change)
        except Exception as exc:  # a bug here must not leave callers waiting forever
            log.exception("client connection loop failed")
            self._finish(CloseCode.INTERNAL, f"client error: {exc!r}")

    async def _go_online(self, ws: ClientConnection) -> None:
        """Make ``ws`` current and send what waited for a connection, oldest first."""
        self._ws = ws
        self._conn_no += 1
        while True:
            waiting = sorted((c for c in self._calls.values()
                              if c.sent_on is None and not c.kind and not c.future.done()),
                             key=lambda c: c.id)
            if not waiting:
                break
            for call in waiting:
                await self._write(call)
        self._online.set()
        self._pacer.online(self.limits)  # paced requests go out from full buckets

    def _go_offline(self, code: int, reason: str) -> None:
        self._online.clear()
        self._ws = None
        overflow = code == CloseCode.SLOW_CONSUMER
        if overflow:
            # An answer bigger than the hub's send buffer (a history page of long
            # messages) closes with 4009: fill holes with smaller pages from now on,
            # and do not repeat a history request that would only do it again.
            self._delivery.page = max(5, self._delivery.page // 2)
        self._pacer.offline()  # paced requests on the wire go back to the queue
        for call in list(self._calls.values()):
            if call.sent_on is None or call.future.done():
                continue
            if call.repeatable and not (overflow and call.t == "history"):
                call.sent_on = None  # send it again on the next connection
            else:
                del self._calls[call.id]
                call.future.set_exception(ConnectionLost(call.t, code, reason))

    async def _read(self, ws: ClientConnection) -> tuple[int, str]:
        try:
            async for data in ws:
                if isinstance(data, str):
                    log.warning("ignored a text frame from the hub")
                    continue
                try:
                    frame = decode(data, _INCOMING)
                except FrameError as exc:
                    log.warning("ignored an unreadable frame from the hub: %s", exc)
                    continue
                try:
                    self._dispatch(frame)
                except Exception:
                    log.exception("failed to handle a %r frame", frame.get("t"))
        except ConnectionClosed:
            pass
        code = ws.close_code if ws.close_code is not None else 1006
        return code, ws.close_reason or ""

    def _delay(self, attempt: int, code: int) -> float:
        initial, ceiling = self._backoff
        if attempt == 1 and code in _AT_ONCE:
            delay = random.uniform(0, initial)
        else:
            step = min(ceiling, initial * 2 ** (attempt - 1))
            delay = step / 2 + random.uniform(0, step / 2)  # "equal jitter"
        return max(delay, _PAUSE_AFTER.get(code, 0.0))

    async def _reconnect_after(self, code: int, reason: str) -> tuple[ClientConnection, int] | None:
        need_token = code == CloseCode.UNAUTHORIZED
        fresh = False  # whether the token in use came from the provider for this outage
        at_once = False
        attempt = 0
        while True:
            attempt += 1
            if self._max_attempts is not None and attempt > self._max_attempts:
                self._finish(code, f"gave up reconnecting after {self._max_attempts} attempts ({reason})")
                return None
            if not at_once:
                await asyncio.sleep(self._delay(attempt, code))
            at_once = False
            try:
                if need_token:
                    assert self._token_provider is not None
                    self._token = await self._token_provider()
                    need_token, fresh = False, True
                return await self._connect_once(initial=False), attempt
            except Unauthorized as exc:
                if self._token_provider is None:
                    self._finish(CloseCode.UNAUTHORIZED, exc.message)
                    return None
                # A stale token is retried at once with a new one; a fresh one that is
                # refused too waits like any other failure.
                need_token, at_once = True, not fresh
                log.info("hello refused (%s); getting a new token", exc.message)
            except RequestFailed as exc:  # hello refused for another reason: a client bug
                self._finish(CloseCode.PROTOCOL_ERROR, str(exc))
                return None
            except Exception as exc:
                log.info("reconnect attempt %d failed: %s", attempt, exc)

    def _finish(self, code: int, reason: str) -> None:
        """Closed for good (not by the user): fail waiting requests, end iteration."""
        self._online.clear()
        self._ws = None
        if self._final is None:
            self._final = ClientClosed(code, reason)
        self._ended.set()
        self._fail_all(self._final)
        self._delivery.emit(Disconnected(code, reason, reconnecting=False))
        self._delivery.end()

    # -- incoming frames ----------------------------------------------------

    def _dispatch(self, frame: dict[str, Any]) -> None:
        t = frame["t"]
        if t in ("ok", "error"):
            self._answer(frame)
        elif t == "msg":
            msg = Message.from_wire(frame)
            self._seen_seq(msg.conv, msg.seq)
            self._delivery.on_message(msg)
        elif t == "gap":
            conv, from_seq, to_seq = frame.get("conv"), frame.get("from_seq"), frame.get("to_seq")
            if isinstance(conv, str) and isinstance(from_seq, int) and isinstance(to_seq, int):
                self._seen_seq(conv, to_seq)
                self._delivery.on_gap(conv, from_seq, to_seq)
        elif t == "conv":
            self._on_conv(frame)
        else:
            typed = event_from_wire(t, frame)
            if typed is None:
                self._delivery.emit(Event(t, {k: v for k, v in frame.items() if k != "t"}))
            else:
                self._delivery.emit(self._on_social(typed))

    def _answer(self, frame: dict[str, Any]) -> None:
        rid = frame.get("id")
        if rid is None:
            log.warning("the hub refused a frame: %s %s", frame.get("code"), frame.get("message"))
            return
        call = self._calls.get(rid) if isinstance(rid, int) else None
        if call is None or call.future.done():
            return
        if frame["t"] == "error" and call.kind and frame.get("code") == ErrorCode.RATE_LIMITED:
            # Over the user's limit (another device spent it) or read late: wait as told,
            # then the same frame (the same cmid) goes out again.
            retry = frame.get("retry_after_ms")
            retry_s = retry / 1000 if isinstance(retry, int | float) and retry >= 0 else None
            log.debug("%s refused for rate; again in %s s", call.t, retry_s)
            call.disarm(asyncio.get_running_loop().time())
            call.sent_on = None
            self._pacer.refused(call, retry_s)
            return
        if frame["t"] == "ok":
            result = {k: v for k, v in frame.items() if k not in ("t", "id")}
            if call.on_ok is not None:
                try:
                    call.on_ok(result)
                except Exception:
                    log.exception("handling the result of %r failed", call.t)
            call.future.set_result(result)
        else:
            call.future.set_exception(RequestFailed.from_wire(frame.get("code"), frame.get("message"),
                                                              call.t))

    def _on_conv(self, frame: dict[str, Any]) -> None:
        conv_id = frame.get("conv")
        if not isinstance(conv_id, str):
            return
        previous = self.conversations.get(conv_id)
        if frame.get("removed"):
            self.conversations.pop(conv_id, None)
            self._delivery.forget(conv_id)
            gone = previous or Conversation.from_wire(frame)
            self._delivery.emit(ConversationChanged(gone, removed=True))
            return
        conv = Conversation.from_wire(frame, previous)
        self.conversations[conv_id] = conv
        if self._delivery.knows(conv_id):
            self._delivery.raise_want(conv_id, conv.last_seq)
        else:
            self._delivery.track(conv_id, conv.last_seq, conv.last_seq, urgent=False)
        self._delivery.emit(ConversationChanged(conv))

    def _seen_seq(self, conv_id: str, seq: int) -> None:
        conv = self.conversations.get(conv_id)
        if conv is not None and seq > conv.last_seq:
            self.conversations[conv_id] = replace(conv, last_seq=seq)


def _listed(value: Any) -> list[str]:
    """A target field (one id, a list of ids, or nothing) as a list."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list | tuple) else []


def _card_wire(video: VideoCard | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(video, VideoCard):
        return video.to_wire()
    return {k: v for k, v in video.items() if v is not None}


class _Connecting:
    """What :func:`connect` returns: ``await`` it, or use it with ``async with``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __await__(self) -> Generator[Any, None, Client]:
        return self.client.open().__await__()

    async def __aenter__(self) -> Client:
        return await self.client.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.client.aclose()


def connect(
    url: str,
    token: str | None = None,
    *,
    device: str | None = None,
    token_provider: TokenProvider | None = None,
    reconnect: bool = True,
    resume: Mapping[str, int] | None = None,
    request_timeout: float = 10.0,
    connect_timeout: float = 10.0,
    backoff_initial: float = 0.25,
    backoff_max: float = 10.0,
    max_reconnect_attempts: int | None = None,
    max_queued_events: int = 1000,
    max_buffered_messages: int = 1000,
    max_queued_requests: int = 10_000,
    hole_grace: float = 0.25,
    new_conversation_backfill: int = 100,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
) -> _Connecting:
    """Connect to the hub at ``url`` (``ws://host:port/ws``) and say hello.

    ``async with connect(url, token) as client: ...`` closes the client at the end;
    ``client = await connect(url, token)`` leaves that to ``await client.aclose()``.

    - ``token``: the JWT your backend signed; ``token_provider``: an async callable
      returning a fresh one, used when the hub refuses or expires the current token
      (close 4001) and on reconnects after that. Give either or both.
    - ``device``: a device name the hub records with the session.
    - ``reconnect``: reconnect after drops and on close codes 1001, 1006, 1011,
      1012, 1013, 4002, 4008 (after a pause), 4009, 4010, and 4001 with a
      ``token_provider``; backoff is exponential from ``backoff_initial`` up to
      ``backoff_max`` seconds with jitter; ``max_reconnect_attempts`` (None: no limit)
      bounds each outage.
    - ``resume``: ``{conv: seq}`` saved from :attr:`Client.resume_state`; messages
      after those seqs are delivered as events. Without it, events start now.
    - ``request_timeout``: default seconds for each request, waiting for a
      reconnect included, but not waiting for its turn under the hub's rate limits:
      ``send``, ``share`` (one per target), ``history`` and ``friend.request`` wait
      in one queue and go out in call order at the rates the welcome announced; a
      ``rate_limited`` answer is waited out (``retry_after_ms``) and repeated.
    - ``max_queued_requests``: how many such requests may wait; one more raises
      :class:`RateLimited` at once.
    - ``max_queued_events``: bound of the event queue; ``max_buffered_messages``:
      messages held per conversation while waiting for a hole to fill;
      ``hole_grace``: seconds to wait for a missing message to arrive by itself
      before fetching it; ``new_conversation_backfill``: how many past messages of
      a conversation that appeared while disconnected are delivered as events.
    """
    return _Connecting(Client(
        url, token, device=device, token_provider=token_provider, reconnect=reconnect, resume=resume,
        request_timeout=request_timeout, connect_timeout=connect_timeout,
        backoff_initial=backoff_initial, backoff_max=backoff_max,
        max_reconnect_attempts=max_reconnect_attempts, max_queued_events=max_queued_events,
        max_buffered_messages=max_buffered_messages, max_queued_requests=max_queued_requests,
        hole_grace=hole_grace,
        new_conversation_backfill=new_conversation_backfill, ping_interval=ping_interval,
        ping_timeout=ping_timeout,
    ))
