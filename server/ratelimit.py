"""Rate limits: token buckets per connection and per user, for each kind of action.

A request over a limit is refused with ``rate_limited`` before anything is stored,
and promised a time: its tokens are set aside at once (the buckets go below zero)
and ``retry_after_ms`` says when the bucket will have paid for them, so the same
request retried then is accepted without being counted again. Each refused request
of a burst is promised the next free time, one token after the one before it, and
a new request waits behind the promises (the bucket is in debt), so no one takes
the token promised to another: retried as told, requests never collide. A
connection is closed with 4008 after ``rate_strikes_max`` strikes (refilled one a
second), and only two things strike: a retry (the same cmid for a send or share,
the same user for a friend request, the same conv, before and limit for history)
that comes before its time, and a refused request while the connection already has
``max_promises`` of that kind waiting: twice the kind's announced burst, at least 64.
So a client that retries as told and keeps at most that many of a kind open (sent and
not yet accepted; one it gives up on counts until 10 s past its time) is never closed.
Typing has a bucket per connection in live.py and goes through the user's limit here
too; either way an excess signal is dropped silently.

When a connection closes, what it set aside for requests it never claimed is given
back to its user's buckets, as far as that is exact: for requests after which the
user's bucket stayed in debt (so no refill was lost to the cap), at most a burst. A
device that reconnects does not wait behind its own abandoned requests.

A server-API call acting as a user is a session of its own that no retry comes back
to: it is refused without a promise, nothing set aside, and ``retry_after_ms`` is when
its cost fits the buckets, as for any request that is not queued.

Each connection has a bucket per kind (``rate_*_per_s``, burst twice that, but at least
5 for friend requests and for blocks, 64 for read markers, 500 users for presence and
``max_group_members`` members named for group changes;
typing ``typing_per_s``, burst 3). A user's devices together get ``rate_user_scale``
times a connection's rate and burst. The buckets live on the node serving the
connection, so without Redis a user with devices on several nodes gets the
user's limit once per node.

**Across nodes** (with ``--redis-url``), a user's spend is also counted for the
whole cluster, in fixed windows of ``burst / rate`` seconds (2 s for sends,
history, reactions and watch updates; 10 s for friend requests and blocks, 5 s for
presence, 6.4 s for read markers and 3 s for typing at the defaults), where a window's
allowance is the user's burst. A request is refused when the sliding estimate
``previous window * (share of the current window still to run) + current window
+ cost`` would pass the allowance, which gives the user's rate on average and
frees capacity smoothly (there is no reset at a window's edge for every node to
rush at). The check stays on the hot path without a round trip: each node
counts its own spend exactly, and every ``FLUSH_S`` (0.1 s) one pipelined round
trip adds what it spent for every user it checked into ``cw:rate:<kind>:<window>:<user>``
(expiring after two windows) and reads back the totals of all nodes for that
window and the one before. The estimate is what the other nodes had reported at
that read plus this node's own spend.

**The bound.** What a node cannot know is what the others accepted since their
last flush and its last read: at most two flush intervals and a round trip. So in
any window a user's accepted requests on n nodes stay within the allowance plus
about ``user rate * (2 * FLUSH_S + round trip) * (n - 1)`` (with 2 nodes at the
defaults, 40 sends a second and 0.1 s: about 8 per 2-s window); and whatever a
window overshoots still counts in the estimate of the next, so over longer spans
the user's total converges to the rate. One exception: devices idle until the
same instant on several nodes each start with a full local burst, so that first
moment can pass up to one local user burst per extra node, once.

Promises are the node's own: a refused request is counted in the shared counters
only when its retry is accepted, and if the other nodes spent the allowance in the
meantime, the retry, on time, is refused with a new time and no strike. Across nodes
``retry_after_ms`` is thus this node's best estimate, not a reservation.

Window numbers come from each node's clock: keep the nodes' clocks in step
(NTP). If Redis cannot be reached the node says so once in its log and keeps
only its local limits until a flush succeeds again: the limiter never fails a
request because of Redis. What a node spent while Redis was away is not counted
later, and a flush repeated after a lost reply may count twice (refusing a
little early); both fade with the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple, Protocol

from clipwire.protocol import ErrorCode, RequestError

log = logging.getLogger("clipwire.ratelimit")


class TokenBucket:
    __slots__ = ("_burst", "_rate", "_set_asides", "_solvent", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()
        self._set_asides = 0  # how many set_aside calls so far
        self._solvent = 0  # the count of set_aside calls when last seen with tokens >= 0

    def take(self, cost: float = 1, now: float | None = None) -> bool:
        """Spend ``cost`` tokens if there are that many; False means over the limit."""
        if self.wait_s(cost, now):
            return False
        self._tokens -= cost
        return True

    def wait_s(self, cost: float = 1, now: float | None = None) -> float:
        """Seconds until the bucket can pay ``cost``: 0.0 now, else when the tokens it
        has, less those set aside, reach ``cost`` (if over the burst: when it is paid off)."""
        now = time.monotonic() if now is None else now
        if now > self._stamp:  # a ``now`` read before this bucket was made adds nothing
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
        if self._tokens >= 0:
            self._solvent = self._set_asides
        return 0.0 if self._tokens >= cost else (cost - self._tokens) / self._rate

    def set_aside(self, cost: float) -> int:
        """Spend ``cost`` for a request refused now and promised a later time, however
        far below zero that takes the bucket: whoever asks next waits until it is paid.
        Returns the mark ``refund`` takes."""
        self._tokens -= cost
        self._set_asides += 1
        if self._tokens >= 0:
            self._solvent = self._set_asides
        return self._set_asides

    def refund(self, costs: Sequence[tuple[int, float]], now: float | None = None) -> None:
        """Give back the ``(mark, cost)`` set aside for requests that will not be claimed,
        but only those after which the bucket has been in debt ever since, and at most a
        burst: the bucket then never holds more than it would have without them (it
        cannot have filled up meanwhile, so none of its refill was lost to the cap).
        Set-asides before a refund are never refunded later (two together could pass a burst)."""
        self.wait_s(0.0, now)  # brought up to now: in debt still?
        owed = sum(cost for mark, cost in costs if mark > self._solvent)
        if owed:
            self._tokens = min(self._burst, self._tokens + min(owed, self._burst))
            self._solvent = self._set_asides


class Promise(NamedTuple):
    """The time given to a refused request, whose ``cost`` is already set aside."""

    early: float  # a retry before this (monotonic) is a strike; from here on it is accepted
    due: float  # the bucket's time for it: now + retry_after
    cost: int
    user: TokenBucket  # the user's bucket it was set aside from, and set_aside's mark there
    mark: int


class Lane:
    """One connection's limit of one kind: its bucket, and its requests refused and
    promised a time, by retry key in the order promised (None until the first)."""

    __slots__ = ("bucket", "promises")

    def __init__(self, rate: float, burst: float) -> None:
        self.bucket = TokenBucket(rate, burst)
        self.promises: dict[Hashable, Promise] | None = None


# kind -> (setting holding the rate per second per connection); the burst is twice
# the rate, but typing's is 3 (its per-connection bucket is in live.py). Each kind has
# buckets of its own, even where kinds share a setting: a flood of reactions must not
# hold back the read markers of the same connection.
KINDS = {"send": "rate_send_per_s", "history": "rate_history_per_s",
         "friend": "rate_friend_per_s", "block": "rate_friend_per_s",
         "presence": "rate_presence_per_s", "react": "rate_social_per_s",
         "read": "rate_social_per_s", "watch": "rate_social_per_s", "typing": "typing_per_s",
         "group": "rate_group_per_s"}
# The kinds announced in welcome.limits (typing is dropped silently, never refused).
ANNOUNCED = ("send", "history", "friend", "block", "presence", "react", "read", "watch",
             "group")
TYPING_BURST = 3.0
FRIEND_BURST_MIN = 5.0  # tapping "Add" on several suggested friends at once must work
# A client catching up marks many conversations read at once, on every reconnect.
READ_BURST_MIN = 64.0
# A presence query costs one per user asked; one of the most a connection may watch
# (social.MAX_WATCHED) must fit in a burst.
PRESENCE_BURST_MIN = 500.0
STRIKES_PER_S = 1.0
# Requests of one kind a connection may have refused and waiting for their time:
# PROMISES_PER_BURST times the kind's announced burst, at least MIN_PROMISES. More than
# a client keeps open when it paces itself by the burst (the SDKs keep under one), and
# a bound on the memory and on the debt one connection can run up for its user.
MIN_PROMISES = 64
PROMISES_PER_BURST = 2
EARLY_S = 0.01  # timers: a retry this early, or a tenth of its wait early, is on time
PROMISE_KEPT_S = 10.0  # a promise not claimed this long after its time is forgotten
MAX_USERS_TRACKED = 100_000
FLUSH_S = 0.1  # how often a node adds its spend to the shared counters and reads them
MAX_FLUSH = 5_000  # (user, kind) pairs in one round trip; more wait for the next flush

# One node's part of a user's spend: (user, kind, window number, count).
Spend = tuple[str, str, int, int]


class SharedUsage(Protocol):
    """Counters every node adds its users' spend to (RedisUsage in broker/redis.py)."""

    async def add(self, spends: Sequence[Spend], ttl_s: float) -> list[tuple[int, int]]:
        """Add each ``(user, kind, window, count)`` (a count may be 0: only a read), keeping
        the counter ``ttl_s``; return for each the totals of all nodes in that window and
        in the window before."""
        ...


def max_promises(burst: float) -> int:
    """How many requests of a kind with this per-connection ``burst`` may wait their time."""
    return max(MIN_PROMISES, PROMISES_PER_BURST * math.ceil(burst))


def _limits(config: Any, kind: str) -> tuple[float, float, float, float]:
    """(rate, burst) of a connection, then of a user, for ``kind``."""
    rate = float(getattr(config, KINDS[kind]))
    if kind == "typing":
        burst = TYPING_BURST
    elif kind in ("friend", "block"):
        burst = max(FRIEND_BURST_MIN, rate * 2)
    elif kind == "read":
        burst = max(READ_BURST_MIN, rate * 2)
    elif kind == "presence":
        burst = max(PRESENCE_BURST_MIN, rate * 2)
    elif kind == "group":
        # A group.create or group.add costs one per member named: a group of the
        # largest size must fit in one burst, or it could never be created at once.
        burst = max(float(config.max_group_members), rate * 2)
    else:
        burst = max(1.0, rate * 2)
    scale = float(config.rate_user_scale)
    return rate, burst, rate * scale, max(1.0, burst * scale)


def announced(config: Any) -> dict[str, float]:
    """The per-connection rates and bursts a client paces itself by (``welcome.limits``)."""
    out: dict[str, float] = {}
    for kind in ANNOUNCED:
        rate, burst, _, _ = _limits(config, kind)
        out[f"rate_{kind}_per_s"] = rate
        out[f"rate_{kind}_burst"] = burst
    return out


class _Usage:
    """One user's spend of one kind, in the current window and the one before: this
    node's (``mine``; ``sent`` of it is in the shared counters) and the others' as last read."""

    __slots__ = ("before", "before_others", "before_sent", "mine", "others", "sent", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.mine = self.sent = self.others = 0
        self.before = self.before_sent = self.before_others = 0

    def at(self, window: int) -> None:
        if window <= self.window:
            return
        if window == self.window + 1:
            self.before, self.before_sent, self.before_others = self.mine, self.sent, self.others
        else:
            self.before = self.before_sent = self.before_others = 0
        self.mine = self.sent = self.others = 0
        self.window = window

    def learn(self, window: int, total: int) -> None:
        """All nodes had spent ``total`` in ``window`` (this node's ``sent`` included)."""
        if window == self.window:
            self.others = max(0, total - self.sent)
        elif window == self.window - 1:
            self.before_others = max(0, total - self.before_sent)


class ClusterSpend:
    """A user's spend of each kind across all nodes, checked without a round trip."""

    def __init__(self, shared: SharedUsage, allowances: dict[str, tuple[float, float]]) -> None:
        self.shared = shared
        self._allow = allowances  # kind -> (allowance per window, window in seconds)
        self._ttl_s = 2 * max(window for _, window in allowances.values()) + 1
        self._usage: dict[tuple[str, str], _Usage] = {}
        self._dirty: dict[tuple[str, str], None] = {}  # checked since the last flush, in order
        self.live = True  # the last flush reached the shared counters
        self.flushes = 0
        self._task: asyncio.Task[None] | None = None

    def _record(self, user: str, kind: str, window: int) -> _Usage:
        key = (user, kind)
        usage = self._usage.get(key)
        if usage is None:
            if len(self._usage) >= MAX_USERS_TRACKED * len(self._allow):
                oldest = next(iter(self._usage))
                del self._usage[oldest]
                self._dirty.pop(oldest, None)
            usage = self._usage[key] = _Usage(window)
        else:
            usage.at(window)
        self._dirty[key] = None  # read back soon, even if refused: refusing must see others too
        return usage

    def wait_s(self, user: str, kind: str, cost: int, now: float | None = None) -> float:
        """0.0 if ``cost`` fits the user's allowance across nodes, else seconds to wait."""
        allowance, window_s = self._allow[kind]
        position = (time.time() if now is None else now) / window_s
        window = int(position)
        usage = self._record(user, kind, window)
        if not self.live:
            return 0.0  # Redis is away: the local buckets alone decide
        left = 1.0 - (position - window)  # share of the current window still to run
        before = usage.before + usage.before_others
        current = usage.mine + usage.others
        need = min(float(cost), allowance)
        if before * left + current + need <= allowance:
            return 0.0
        if current + need <= allowance:  # the window before weighs less as this one runs
            until = 1.0 - (allowance - current - need) / before
            return max(0.001, (until - (1.0 - left)) * window_s)
        # Only in the next window, once enough of this one's weight has gone.
        return max(0.001, (left + 1.0 - (allowance - need) / current) * window_s)

    def spend(self, user: str, kind: str, cost: int, now: float | None = None) -> None:
        window = int((time.time() if now is None else now) / self._allow[kind][1])
        self._record(user, kind, window).mine += cost

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rate-flush")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._dirty and self.live:  # leaving: the others should count what was spent here
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), 1.0)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            if self._dirty:
                await self.flush()

    async def flush(self) -> None:
        """Add this node's unsent spend to the shared counters; learn the others' (one round trip)."""
        keys = []
        for key in self._dirty:
            keys.append(key)
            if len(keys) >= MAX_FLUSH:
                break
        for key in keys:
            del self._dirty[key]
        spends: list[Spend] = []
        for key in keys:
            usage = self._usage.get(key)
            if usage is None:
                continue
            user, kind = key
            if usage.before > usage.before_sent:  # spent just before the window turned
                spends.append((user, kind, usage.window - 1, usage.before - usage.before_sent))
                usage.before_sent = usage.before
            spends.append((user, kind, usage.window, usage.mine - usage.sent))
            usage.sent = usage.mine
        try:
            totals = await self.shared.add(spends, self._ttl_s)
        except Exception as exc:  # never let the limiter fail a request: local limits only
            if self.live:
                self.live = False
                log.warning("rate limits: shared counters unavailable (%s); each node applies "
                            "its local limits until they answer again", exc or type(exc).__name__)
            return
        self.flushes += 1
        if not self.live:
            self.live = True
            log.warning("rate limits: shared counters answer again; limits span the nodes again")
        for (user, kind, window, _), (total, total_before) in zip(spends, totals, strict=True):
            usage = self._usage.get((user, kind))
            if usage is not None:
                usage.learn(window, total)
                usage.learn(window - 1, total_before)


def _promise(now: float, wait_s: float, cost: int, user: TokenBucket, mark: int) -> Promise:
    return Promise(now + wait_s - max(EARLY_S, wait_s / 10), now + wait_s, cost, user, mark)


def _refusal(kind: str, wait_s: float) -> RequestError:
    # Rounded up: retried exactly then, the request finds its tokens paid for.
    return RequestError(ErrorCode.RATE_LIMITED, f"too many {kind} requests; slow down",
                        retry_after_ms=max(1, math.ceil(wait_s * 1000)))


class RateLimiter:
    def __init__(self, config: Any, shared: SharedUsage | None = None) -> None:
        self._limits = {kind: _limits(config, kind) for kind in KINDS}
        self._max_promises = {kind: max_promises(limits[1]) for kind, limits in self._limits.items()}
        self._strikes_burst = float(config.rate_strikes_max)
        self._users: dict[str, dict[str, TokenBucket]] = {}
        self.cluster = None if shared is None else ClusterSpend(shared, {
            kind: (user_burst, user_burst / user_rate)
            for kind, (_, _, user_rate, user_burst) in self._limits.items()
        })

    def start(self) -> None:
        if self.cluster is not None:
            self.cluster.start()

    async def close(self) -> None:
        if self.cluster is not None:
            await self.cluster.close()

    def _user_bucket(self, user: str, kind: str) -> TokenBucket:
        buckets = self._users.get(user)
        if buckets is None:
            if len(self._users) >= MAX_USERS_TRACKED:
                del self._users[next(iter(self._users))]
            buckets = self._users[user] = {}
        bucket = buckets.get(kind)
        if bucket is None:
            _, _, rate, burst = self._limits[kind]
            bucket = buckets[kind] = TokenBucket(rate, burst)
        return bucket

    def check(self, session: Any, kind: str, key: Hashable, cost: int = 1) -> None:
        """Spend ``cost`` of ``kind`` for ``session`` and its user, or raise ``rate_limited``
        with the time promised to this request; ``key`` names it across its retries.

        A session whose ``retries_here`` is False (a server-API call) is never seen
        again, so no retry could claim a promise: it is refused with the time its cost
        will fit, and nothing is set aside or remembered for it.
        """
        now = time.monotonic()
        lane = session.lanes.get(kind)
        if lane is None:
            rate, burst, _, _ = self._limits[kind]
            lane = session.lanes[kind] = Lane(rate, burst)
        if lane.promises:
            promise = lane.promises.get(key)
            if promise is not None:
                if cost <= promise.cost:
                    self._claim(session, lane.promises, kind, key, promise, now)
                    return
                del lane.promises[key]  # asks for more than was set aside: a new request
        user = self._user_bucket(session.user, kind)
        cluster = self.cluster
        wait = max(lane.bucket.wait_s(cost, now), user.wait_s(cost, now),
                   0.0 if cluster is None else cluster.wait_s(session.user, kind, cost))
        if not wait:
            lane.bucket.set_aside(cost)
            user.set_aside(cost)
            if cluster is not None:
                cluster.spend(session.user, kind, cost)
            return
        if not session.retries_here:
            raise _refusal(kind, wait)
        promises = lane.promises
        if promises is None:
            promises = lane.promises = {}
        while promises:  # forget what was never claimed (the oldest first)
            oldest = next(iter(promises))
            if promises[oldest].due > now - PROMISE_KEPT_S:
                break
            del promises[oldest]
        if len(promises) >= self._max_promises[kind]:
            self._strike(session)  # more waiting than any client pipelines: not told, ignoring
        else:
            # Set aside here; the cluster counts it when it is claimed (see _claim).
            lane.bucket.set_aside(cost)
            promises[key] = _promise(now, wait, cost, user, user.set_aside(cost))
        raise _refusal(kind, wait)

    def _claim(self, session: Any, promises: dict[Hashable, Promise], kind: str, key: Hashable,
               promise: Promise, now: float) -> None:
        """A retry of a refused request: accepted at its time (it was paid for when refused);
        before it, a strike and the time still to wait."""
        if now < promise.early:
            self._strike(session)
            raise _refusal(kind, promise.due - now)
        del promises[key]
        cluster = self.cluster
        if cluster is None:
            return
        # Other nodes may have spent the user's allowance meanwhile: that the hub could
        # not promise. On time, so no strike: a new time, the tokens still set aside.
        wait = cluster.wait_s(session.user, kind, promise.cost)
        if wait:
            promises[key] = _promise(now, wait, promise.cost, promise.user, promise.mark)
            raise _refusal(kind, wait)
        cluster.spend(session.user, kind, promise.cost)

    def release(self, session: Any) -> None:
        """A connection closed: what it had set aside from its user's buckets for requests
        it will never claim stops holding the user's other devices back (``refund``)."""
        now = time.monotonic()
        for lane in session.lanes.values():
            owed: dict[TokenBucket, list[tuple[int, float]]] = {}
            for promise in (lane.promises or {}).values():
                owed.setdefault(promise.user, []).append((promise.mark, promise.cost))
            for bucket, costs in owed.items():
                bucket.refund(costs, now)
            lane.promises = None

    def _strike(self, session: Any) -> None:
        strikes = session.strikes
        if strikes is None:
            strikes = session.strikes = TokenBucket(STRIKES_PER_S, self._strikes_burst)
        if not strikes.take():
            session.close(4008, "rate limit exceeded repeatedly")

    def user_allows(self, user: str, kind: str, cost: int = 1) -> bool:
        """Spend ``cost`` of ``kind`` from the user's limit alone (typing: its connection's
        bucket is checked first in live.py); False, silently, when over it."""
        cluster = self.cluster
        if cluster is not None and cluster.wait_s(user, kind, cost):
            return False
        if not self._user_bucket(user, kind).take(cost):
            return False
        if cluster is not None:
            cluster.spend(user, kind, cost)
        return True
