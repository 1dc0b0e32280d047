"""Signed webhooks to the application's backend: offline pushes, presence, share analytics.

The hub tells a :class:`WebhookSender` what happens through ``on_event``, which
only updates memory and never waits. The sender turns events into webhook
events in one bounded queue, and a single task POSTs them in batches, retrying
with exponential backoff. A slow or dead backend therefore costs the hub this
queue and nothing else: once it is full, new events are dropped, counted
(``clipwire_webhook_dropped_total``) and logged at most every few seconds.

Every POST carries a JSON body ``{"events": [event, ...]}``, where an event is
``{"id", "type", "ts", "data"}`` (``ts`` in ms), and two headers::

    Clipwire-Webhook-Id: wh_<32 hex>    one per POST, the same on each retry: de-duplicate on it
    Clipwire-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<id>.<t>." + raw body)>

Receivers check the signature with :func:`verify_signature` over the id and the
raw body. The id is inside the MAC (as with Stripe and Svix): were it not, a
captured request could be replayed under a fresh id within the tolerance window
(300 s) and pass a receiver's de-duplication.

Event types, by the group of ``--webhook-events`` that enables them:

``push`` (default)
    ``message.created`` ``{user, convs: [{conv, count, first_seq, last_seq, message}]}``:
    ``user`` had no connected device when messages arrived and neither
    connected nor read them within ``--webhook-grace-s``. One event per user per
    release, one entry per conversation with the number of unread messages and
    the latest one (the hook a push-notification service needs). Members who
    block the sender get none.
``presence`` (default)
    ``presence`` ``{user, online, last_seen, epoch}``: a user's first device
    connected or last one left. ``epoch`` grows with each transition of a user,
    so the backend can drop one that arrives after a newer one.
``share`` (default)
    ``share.sent`` ``{conv, seq, from, video_id, video, target, request, ts}`` for
    every video message (``target`` is ``{"to": user}`` for a DM, ``{"conv": id}``
    for a group; ``request`` is ``share`` or ``send``); ``share.opened``
    ``{conv, seq, from, video_id, user, ts}`` when a member other than the
    sharer first reads up to the share; ``share.replied`` ``{conv, seq, from,
    video_id, user, reply_seq, ts}`` for each message of another member that
    replies to it. Opened and replied are known for the shares this process
    saw sent (the latest ``SHARE_TRACK_MAX``), not for older ones.
``messages``
    ``message.stored``: every stored message as on the wire, plus ``members``
    and ``request`` (moderation, analytics).
``reactions``
    ``reaction`` ``{conv, seq, user, emoji, on, at_ms?}``.

``all`` enables every group.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import random
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .config import WEBHOOK_EVENT_GROUPS

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("clipwire.webhooks")

SIGNATURE_HEADER = "Clipwire-Signature"
ID_HEADER = "Clipwire-Webhook-Id"
DEFAULT_TOLERANCE_S = 300.0
SHARE_TRACK_MAX = 10_000        # shares remembered for opened/replied
SHARE_READERS_MAX = 200_000     # (share, member not yet opened) pairs remembered in all
RELEASE_SLACK_S = 0.1           # pushes due this close together leave in one batch
RETRY_STATUSES = frozenset({408, 425, 429})


# -- signatures ---------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int, *, webhook_id: str) -> str:
    """The ``Clipwire-Signature`` value for ``body`` sent as ``webhook_id`` at ``timestamp`` (unix s)."""
    return f"t={timestamp},v1={_mac(secret, webhook_id, timestamp, body)}"


def verify_signature(secret: str, header: str | None, body: bytes | str,
                     tolerance_s: float = DEFAULT_TOLERANCE_S, *, webhook_id: str | None,
                     now: float | None = None) -> bool:
    """True if ``header`` (``Clipwire-Signature``) signs ``webhook_id`` and ``body`` recently enough.

    For receivers: pass the raw request body, not re-serialized JSON, and the
    ``Clipwire-Webhook-Id`` header (required: it is signed, so a captured
    request cannot be replayed under another id to slip past de-duplication).
    A timestamp further than ``tolerance_s`` from ``now`` (default: the clock)
    fails, so it cannot be replayed later either; within the window,
    de-duplicate on the id. Several ``v1=`` values may be given (secret
    rotation): one match is enough.
    """
    if not header or not webhook_id:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    data = body.encode() if isinstance(body, str) else body
    expected = _mac(secret, webhook_id, timestamp, data)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def _mac(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def event_groups(value: str) -> frozenset[str]:
    """The groups a ``--webhook-events`` value names (``all``: every group)."""
    names = {name.strip() for name in value.split(",") if name.strip()}
    if "all" in names:
        return frozenset(WEBHOOK_EVENT_GROUPS)
    return frozenset(names)


# -- small helpers -------------------------------------------------------------


class ThrottledLog:
    """A recurring problem logged at most once per ``every_s``, with how often it recurred."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0) -> None:
        self._logger = logger
        self._every_s = every_s
        self._last = -math.inf
        self._folded = 0

    def warning(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last < self._every_s:
            self._folded += 1
            return
        if self._folded:
            message += " (and %d more like it since the last line)"
            args = (*args, self._folded)
        self._last, self._folded = now, 0
        self._logger.warning(message, *args)


@dataclass
class WebhookStats:
    """What the sender did so far, in events (also exported as ``clipwire_webhook_*``)."""

    sent: int = 0      # accepted by the backend (2xx)
    failed: int = 0    # given up: retries exhausted, or refused (3xx, most 4xx)
    dropped: int = 0   # never sent: a bound was reached, or still queued at the shutdown deadline
    retries: int = 0   # POSTs repeated after a failure


@dataclass(slots=True)
class _Push:
    """Messages of one conversation waiting out the grace before ``user`` gets a push."""

    user: str
    conv: str
    due: float
    seqs: list[int]
    message: dict[str, Any]

    def data(self) -> dict[str, Any]:
        return {"conv": self.conv, "count": len(self.seqs), "first_seq": self.seqs[0],
                "last_seq": self.seqs[-1], "message": self.message}


@dataclass(slots=True)
class _Share:
    sender: str
    video_id: str
    unopened: set[str] = field(default_factory=set)


# -- the sender -----------------------------------------------------------------


class WebhookSender:
    """A :class:`~clipwire.server.policy.HubListener` POSTing signed events to the backend.

    ``start`` inside the running loop, ``close`` to flush within ``flush_s``.
    Sizes are bounds, never targets: ``queue_max`` events wait to be sent and
    ``queue_max`` (user, conversation) pushes wait out their grace, at most.
    """

    def __init__(self, hub: Hub, url: str, secret: str, *, events: str = "push,presence,share",
                 grace_s: float = 3.0, queue_max: int = 10_000, batch_max: int = 100,
                 timeout_s: float = 5.0, retries: int = 5, backoff_s: float = 0.5,
                 backoff_max_s: float = 30.0, flush_s: float = 5.0,
                 registry: CollectorRegistry | None = None) -> None:
        if not secret:
            raise ValueError("webhooks need a secret to sign with")
        self.hub = hub
        self.url = url
        self._secret = secret
        self.groups = event_groups(events)
        self.grace_s = grace_s
        self.queue_max = queue_max
        self.batch_max = batch_max
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.flush_s = flush_s
        self.stats = WebhookStats()
        self._queue: deque[dict[str, Any]] = deque()
        self._inflight: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._pending: OrderedDict[tuple[str, str], _Push] = OrderedDict()  # oldest (first due) first
        self._pending_of: dict[str, set[str]] = {}
        self._pending_wake = asyncio.Event()
        self._shares: OrderedDict[tuple[str, int], _Share] = OrderedDict()
        self._shares_in: dict[str, dict[int, _Share]] = {}
        self._share_readers = 0
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False  # the sender task ends once the queue is empty
        self._closed = False   # no new events are taken
        self._drop_log = ThrottledLog(log)
        self._fail_log = ThrottledLog(log)
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "message.created": self._on_message, "message.read": self._on_read,
            "reaction": self._on_reaction, "presence": self._on_presence,
        }
        self._metrics(registry)

    @classmethod
    def from_config(cls, hub: Hub) -> WebhookSender:
        """The sender the hub's settings describe, exporting into the hub's metrics registry."""
        c = hub.config
        assert c.webhook_url and c.webhook_secret, "check() requires both"
        return cls(hub, c.webhook_url, c.webhook_secret, events=c.webhook_events,
                   grace_s=c.webhook_grace_s, queue_max=c.webhook_queue_max,
                   batch_max=c.webhook_batch_max, timeout_s=c.webhook_timeout_s,
                   retries=c.webhook_retries, backoff_s=c.webhook_backoff_s,
                   backoff_max_s=c.webhook_backoff_max_s, flush_s=c.webhook_flush_s,
                   registry=hub.metrics.registry)

    def _metrics(self, registry: CollectorRegistry | None) -> None:
        r = registry
        depth = Gauge("clipwire_webhook_queue_depth", "Webhook events waiting to be sent", registry=r)
        depth.set_function(lambda: len(self._queue) + len(self._inflight))
        waiting = Gauge("clipwire_webhook_pending_pushes",
                        "Offline pushes (user, conversation) waiting out their grace", registry=r)
        waiting.set_function(lambda: len(self._pending))
        self._m_dropped = Counter("clipwire_webhook_dropped", "Webhook events dropped, by reason",
                                  ["reason"], registry=r)
        self._m_sent = Counter("clipwire_webhook_sent", "Webhook events the backend accepted",
                               registry=r)
        self._m_failed = Counter("clipwire_webhook_failed",
                                 "Webhook events given up after retries or refused", registry=r)
        self._m_retries = Counter("clipwire_webhook_retries", "Webhook POSTs retried", registry=r)
        self._m_post = Histogram("clipwire_webhook_post_seconds", "Time of one webhook POST",
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                 registry=r)

    @property
    def queue_depth(self) -> int:
        """Events queued or in the POST in flight."""
        return len(self._queue) + len(self._inflight)

    @property
    def pending_pushes(self) -> int:
        return len(self._pending)

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"User-Agent": "clipwire-webhooks"},
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send_loop(), name="clipwire-webhooks"),
                       loop.create_task(self._push_loop(), name="clipwire-webhook-pushes")]

    async def close(self, timeout_s: float | None = None) -> None:
        """Push what waits out its grace now, then send the queue within ``timeout_s``.

        What is still unsent at the deadline is dropped and counted (``shutdown``).
        """
        if self._closed:
            return
        self._closed = True
        deadline = self.flush_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(deadline):
                if self._tasks:
                    self._pending_wake.set()
                    await self._tasks[1]  # releases every pending push, then ends
                else:
                    await self._release(math.inf)
                self._closing = True
                self._wake.set()
                if self._tasks:
                    await self._tasks[0]  # ends once the queue is empty
        except TimeoutError:
            log.warning("webhooks: flush deadline (%.1f s) reached", deadline)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            unsent = len(self._queue) + len(self._inflight) + len(self._pending)
            if unsent:
                self._drop("shutdown", unsent)
            self._queue.clear()
            self._inflight = []
            self._pending.clear()
            self._pending_of.clear()
            if self._session is not None:
                await self._session.close()
                self._session = None

    # -- from the hub (never waits) ---------------------------------------------

    def on_event(self, kind: str, payload: dict[str, Any]) -> None:
        handler = self._handlers.get(kind)
        if handler is not None and not self._closed:
            handler(payload)

    def _on_message(self, payload: dict[str, Any]) -> None:
        sender, conv, seq = payload["from"], payload["conv"], payload["seq"]
        members: list[str] = payload.get("members") or []
        message = {k: v for k, v in payload.items() if k not in ("members", "share")}
        request = "share" if payload.get("share") else "send"
        if "messages" in self.groups:
            self._enqueue("message.stored", {**message, "members": members, "request": request})
        if "share" in self.groups:
            reply = payload.get("reply")
            if reply:
                self._replied(conv, reply["seq"], sender, seq)
            video = payload.get("video")
            if payload.get("kind") == "video" and video:
                self._track_share(conv, seq, sender, video["id"], members)
                self._enqueue("share.sent", {
                    "conv": conv, "seq": seq, "from": sender, "video_id": video["id"],
                    "video": video, "target": self._target(conv, sender, members),
                    "request": request, "ts": payload.get("ts")})
        if "push" in self.groups:
            self._hold_pushes(sender, conv, seq, message, members)

    def _on_read(self, payload: dict[str, Any]) -> None:
        user, conv, seq = payload["user"], payload["conv"], payload["seq"]
        entry = self._pending.get((user, conv))
        if entry is not None:
            entry.seqs = [s for s in entry.seqs if s > seq]
            if not entry.seqs:
                self._cancel(user, conv)
        if "share" in self.groups:
            self._opened(conv, seq, user)

    def _on_reaction(self, payload: dict[str, Any]) -> None:
        if "reactions" in self.groups:
            self._enqueue("reaction", dict(payload))

    def _on_presence(self, payload: dict[str, Any]) -> None:
        if payload.get("online"):
            # A device connected: it was sent every message waiting for a push (resume).
            for conv in list(self._pending_of.get(payload["user"], ())):
                self._cancel(payload["user"], conv)
        if "presence" in self.groups:
            self._enqueue("presence", dict(payload))

    # -- offline pushes ----------------------------------------------------------

    def _hold_pushes(self, sender: str, conv: str, seq: int, message: dict[str, Any],
                     members: Iterable[str]) -> None:
        """Start (or extend) the grace of each member with no connected device."""
        connected = self.hub.sessions
        record = self.hub.social.graph.peek(sender)
        blockers = record.blocked_by if record is not None else ()
        due = time.monotonic() + self.grace_s
        was_empty = not self._pending
        for user in members:
            if user == sender or user in connected or user in blockers:
                continue
            entry = self._pending.get((user, conv))
            if entry is not None:
                entry.seqs.append(seq)
                entry.message = message
                continue
            if len(self._pending) >= self.queue_max:
                self._drop("push_backlog")
                continue
            self._pending[(user, conv)] = _Push(user, conv, due, [seq], message)
            self._pending_of.setdefault(user, set()).add(conv)
        if was_empty and self._pending:
            self._pending_wake.set()  # the push loop was idle

    def _cancel(self, user: str, conv: str) -> _Push | None:
        entry = self._pending.pop((user, conv), None)
        convs = self._pending_of.get(user)
        if convs is not None:
            convs.discard(conv)
            if not convs:
                del self._pending_of[user]
        return entry

    async def _push_loop(self) -> None:
        # The grace is the same for all, so the oldest entry is always the first due, and
        # the loop need only be woken for a first entry, or to release everything on close.
        while True:
            self._pending_wake.clear()
            if self._closed:
                try:
                    await self._release(math.inf)
                except Exception:
                    log.exception("webhooks: releasing offline pushes at shutdown failed")
                return
            if not self._pending:
                await self._pending_wake.wait()
                continue
            wait = next(iter(self._pending.values())).due - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._pending_wake.wait()
                continue
            try:
                await self._release(time.monotonic() + RELEASE_SLACK_S)
            except Exception:
                log.exception("webhooks: releasing offline pushes failed")

    async def _release(self, until: float) -> None:
        """Queue a ``message.created`` per user for the entries due by ``until``, unless now online."""
        due: list[_Push] = []
        while self._pending:
            entry = next(iter(self._pending.values()))
            if entry.due > until:
                break
            self._cancel(entry.user, entry.conv)
            due.append(entry)
        if not due:
            return
        users = sorted({entry.user for entry in due})
        try:
            online = await self.hub.presence.online(users)  # on any node
        except Exception as exc:
            self._fail_log.warning("webhooks: presence lookup failed (%s); pushing anyway", exc)
            online = set()
        online |= {user for user in users if user in self.hub.sessions}  # connected meanwhile
        by_user: dict[str, list[_Push]] = {}
        for entry in due:
            if entry.user not in online:
                by_user.setdefault(entry.user, []).append(entry)
        for user, entries in by_user.items():
            self._enqueue("message.created", {"user": user, "convs": [e.data() for e in entries]})

    # -- share analytics -----------------------------------------------------------

    def _target(self, conv: str, sender: str, members: list[str]) -> dict[str, str]:
        cached = self.hub.convs.peek(conv)
        kind = cached.kind if cached is not None else ("dm" if conv.startswith("dm:") else "group")
        if kind == "dm":
            return {"to": next((u for u in members if u != sender), sender)}
        return {"conv": conv}

    def _track_share(self, conv: str, seq: int, sender: str, video_id: str, members: list[str]) -> None:
        share = _Share(sender, video_id, {u for u in members if u != sender})
        self._shares[(conv, seq)] = share
        self._shares_in.setdefault(conv, {})[seq] = share
        self._share_readers += len(share.unopened)
        while self._shares and (len(self._shares) > SHARE_TRACK_MAX
                                or self._share_readers > SHARE_READERS_MAX):
            (old_conv, old_seq), old = self._shares.popitem(last=False)
            self._share_readers -= len(old.unopened)
            in_conv = self._shares_in[old_conv]
            del in_conv[old_seq]
            if not in_conv:
                del self._shares_in[old_conv]

    def _opened(self, conv: str, seq: int, user: str) -> None:
        for share_seq, share in self._shares_in.get(conv, {}).items():  # in seq order
            if share_seq > seq:
                break
            if user in share.unopened:
                share.unopened.discard(user)
                self._share_readers -= 1
                self._enqueue("share.opened", {"conv": conv, "seq": share_seq, "from": share.sender,
                                               "video_id": share.video_id, "user": user,
                                               "ts": self.hub.now_ms()})

    def _replied(self, conv: str, share_seq: int, user: str, reply_seq: int) -> None:
        share = self._shares.get((conv, share_seq))
        if share is not None and user != share.sender:
            self._enqueue("share.replied", {"conv": conv, "seq": share_seq, "from": share.sender,
                                            "video_id": share.video_id, "user": user,
                                            "reply_seq": reply_seq, "ts": self.hub.now_ms()})

    # -- the queue and the one task that empties it -----------------------------------

    def _enqueue(self, kind: str, data: dict[str, Any]) -> None:
        if len(self._queue) >= self.queue_max:
            self._drop("queue_full")
            return
        self._queue.append({"id": f"ev_{secrets.token_hex(12)}", "type": kind,
                            "ts": self.hub.now_ms(), "data": data})
        self._wake.set()

    def _drop(self, reason: str, count: int = 1) -> None:
        self.stats.dropped += count
        self._m_dropped.labels(reason).inc(count)
        self._drop_log.warning("webhooks: dropped %d event(s) (%s); %d dropped in all",
                               count, reason, self.stats.dropped)

    async def _send_loop(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            count = min(self.batch_max, len(self._queue))
            self._inflight = [self._queue.popleft() for _ in range(count)]
            try:
                await self._deliver(self._inflight)
            except Exception:  # a bug here must not end webhooks for the life of the hub
                log.exception("webhooks: sending %d event(s) failed", count)
                self.stats.failed += count
                self._m_failed.inc(count)
            self._inflight = []

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """POST one batch until the backend takes it, refuses it, or the retries run out."""
        body = orjson.dumps({"events": batch})
        webhook_id = f"wh_{secrets.token_hex(16)}"
        attempt = 0
        while True:
            status, problem = await self._post(body, webhook_id)
            if status is not None and 200 <= status < 300:
                self.stats.sent += len(batch)
                self._m_sent.inc(len(batch))
                return
            retryable = status is None or status >= 500 or status in RETRY_STATUSES
            if not retryable or attempt >= self.retries:
                self.stats.failed += len(batch)
                self._m_failed.inc(len(batch))
                self._fail_log.warning("webhooks: gave up on %d event(s) after %d attempt(s): %s",
                                       len(batch), attempt + 1, problem)
                return
            attempt += 1
            self.stats.retries += 1
            self._m_retries.inc()
            delay = min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # jitter: backends recover unherded

    async def _post(self, body: bytes, webhook_id: str) -> tuple[int | None, str]:
        """The response status (``None`` if there was none) and a description for the log."""
        assert self._session is not None
        headers = {"Content-Type": "application/json", ID_HEADER: webhook_id,
                   SIGNATURE_HEADER: sign(self._secret, body, int(time.time()), webhook_id=webhook_id)}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s), self._session.post(
                    self.url, data=body, headers=headers, allow_redirects=False) as response:
                status = response.status
        except TimeoutError:
            return None, f"no answer within {self.timeout_s} s"
        except (aiohttp.ClientError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            self._m_post.observe(time.perf_counter() - started)
        return status, f"HTTP {status}"
