"""Pacing: the client's side of the hub's rate limits, so that bursts never provoke 4008.

The hub refuses a ``send`` or ``share`` (one per target), ``history`` or
``friend.request`` over its rate with ``rate_limited`` and a ``retry_after_ms``, and
closes a connection that keeps going past its limits with 4008. An application that
fires a hundred sends at once must not be punished for it, so requests of these
kinds wait here and go out in call order at the rate the welcome announced
(``rate_<kind>_per_s``, ``rate_<kind>_burst``):

- One token bucket per kind, full after each welcome. It keeps a reserve of a tenth
  of the burst (at least one request) unused, so that a hub that reads a few
  requests late, and then all at once, still finds tokens for them.
- A share costs what the hub counts: each distinct user in ``to`` and each distinct
  conversation in ``convs``. One that costs more than the bucket holds (41 to 100
  targets at the default burst of 40) waits until the bucket is full, then goes out
  and leaves it in debt, so later requests wait behind it. The hub refuses it once,
  sets its cost aside and names its time; it then goes out again and passes.
- A refusal (that one, or another device of the same user spent the user's share)
  puts the request back at its place in the queue and holds its kind for the hub's
  ``retry_after_ms``; it then goes out again with the same frame (the same ``cmid``),
  and the application sees no error. The hub counts the repeat against nothing (it
  set the cost aside when it refused), so neither does the bucket: it is empty at
  the time the hub named, and later requests wait for its tokens after that.
- Order: requests to the same conversation (a DM by user, a group by id, each
  target of a share) are never on the wire together. If the first were refused and
  the second accepted, the second would get the lower seq; so the second waits for
  the first's answer. Requests to different conversations go out side by side.
- A hub that announces no rates is paced by its refusals alone.

The queue holds at most ``max_queued`` requests; one more is refused at once with a
local :class:`RateLimited`. Time spent waiting here does not count against a
request's timeout (a thousand sends at 20 a second take 50 s); the time on the wire,
and waiting for a reconnect after it, does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final, Protocol

__all__ = ["KIND_OF", "Pacer", "TokenBucket", "share_cost"]

log = logging.getLogger("clipwire.client")

#: Request type -> the hub's rate-limit kind it spends.
KIND_OF: Final = {"send": "send", "share": "send", "history": "history", "friend.request": "friend"}
_KINDS: Final = ("send", "history", "friend")
#: Seconds to hold a kind after a ``rate_limited`` without ``retry_after_ms``.
_DEFAULT_RETRY_S: Final = 1.0


def share_cost(to: Sequence[str], convs: Sequence[str]) -> int:
    """What the hub counts for a share: each of ``to`` and ``convs`` without repeats (a
    user and their DM in ``convs`` count twice, as the hub delivers twice)."""
    return max(1, len(set(to)) + len(set(convs)))


class TokenBucket:
    """The client's copy of one of its connection's buckets on the hub."""

    __slots__ = ("_cap", "_held_until", "_rate", "_stamp", "_tokens")

    def __init__(self) -> None:
        self._rate: float | None = None  # None: not announced; only refusals pace
        self._cap = self._tokens = 0.0
        self._stamp = 0.0
        self._held_until = 0.0

    def reset(self, rate: float | None, burst: float | None, now: float) -> None:
        """A new connection: its buckets on the hub start full, so does this one."""
        if rate is None or burst is None or rate <= 0 or burst <= 0:
            self._rate = None
            return
        self._rate = rate
        self._cap = max(1.0, burst - max(1.0, burst / 10))
        self._tokens, self._stamp = self._cap, now

    def wait_s(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` can be spent (0.0: now); a cost of 0 (a repeat the hub
        has set aside the tokens for) waits only for the hold."""
        held = max(0.0, self._held_until - now)
        if self._rate is None or cost <= 0:
            return held
        self._refill(now)
        # A cost over the cap goes out from a full bucket and leaves it in debt: the
        # reserve covers it up to the burst; past the burst, the hub names its time.
        need = min(cost, self._cap)
        return max(held, (need - self._tokens) / self._rate)

    def take(self, cost: float, now: float) -> None:
        if self._rate is not None:
            self._refill(now)
            self._tokens -= cost

    def hold(self, until: float, now: float) -> None:
        """The hub refused and set the cost aside until ``until``: spend nothing before
        then, and be empty then (the hub's bucket is, once the repeat is accepted)."""
        self._held_until = max(self._held_until, until)
        if self._rate is not None:
            self._refill(now)
            self._tokens = min(self._tokens, (now - self._held_until) * self._rate)

    def _refill(self, now: float) -> None:
        assert self._rate is not None
        self._tokens = min(self._cap, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now


class Paced(Protocol):
    """What the pacer needs to know of a request."""

    id: int
    kind: str
    cost: int
    keys: frozenset[str]

    def done(self) -> bool: ...


class Pacer:
    """A FIFO of paced requests, released by ``release`` while online."""

    def __init__(self, release: Callable[[Paced], Awaitable[None]], max_queued: int) -> None:
        self._release = release
        self.max_queued = max_queued
        self._buckets = {kind: TokenBucket() for kind in _KINDS}
        self._queue: dict[int, Paced] = {}  # released in id order: call order
        self._on_wire: dict[int, Paced] = {}
        self._busy: set[str] = set()  # conversations with a request on the wire
        self._set_aside: set[int] = set()  # refused on this connection: the repeat is paid
        self._online = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def full(self) -> bool:
        return len(self._queue) >= self.max_queued

    def online(self, limits: Mapping[str, float]) -> None:
        """A welcome: buckets full at the announced rates, then release what waits."""
        now = asyncio.get_running_loop().time()
        for kind, bucket in self._buckets.items():
            rate, burst = limits.get(f"rate_{kind}_per_s"), limits.get(f"rate_{kind}_burst")
            bucket.reset(None if rate is None else float(rate), None if burst is None else float(burst), now)
        self._online = True
        self._kick()

    def offline(self) -> None:
        """The connection dropped: what was on the wire waits here for the next one."""
        self._online = False
        self._set_aside.clear()  # the hub keeps what it set aside for a connection only
        for call in list(self._on_wire.values()):
            self.enqueue(call)

    def enqueue(self, call: Paced) -> None:
        """Queue ``call`` at its place in call order (again, after a drop or a refusal)."""
        self._forget(call)
        self._queue[call.id] = call
        self._kick()

    def refused(self, call: Paced, retry_after_s: float | None) -> None:
        """The hub answered ``rate_limited``: hold the kind, then send ``call`` again."""
        loop = asyncio.get_running_loop()
        wait = _DEFAULT_RETRY_S if retry_after_s is None else retry_after_s
        self._buckets[call.kind].hold(loop.time() + wait, loop.time())
        self._set_aside.add(call.id)
        self.enqueue(call)

    def answered(self, call: Paced) -> None:
        """``call`` got its answer, or its caller stopped waiting: forget it."""
        self._forget(call)
        self._queue.pop(call.id, None)
        self._set_aside.discard(call.id)
        self._kick()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._queue.clear()
        self._on_wire.clear()
        self._busy.clear()
        self._set_aside.clear()

    def _forget(self, call: Paced) -> None:
        if self._on_wire.pop(call.id, None) is not None:
            self._busy.difference_update(call.keys)

    def _kick(self) -> None:
        self._wake.set()
        if self._task is None and self._queue:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="clipwire-pacer")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            wait = await self._release_due(loop) if self._online else None
            if self._wake.is_set():
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _release_due(self, loop: asyncio.AbstractEventLoop) -> float | None:
        """Send what may go now, in call order; return seconds until more may (None: never)."""
        blocked_keys = set(self._busy)
        blocked_kinds: set[str] = set()
        soonest: float | None = None
        # Mostly appended in id order already, so sorting is cheap.
        for call in sorted(self._queue.values(), key=lambda c: c.id):
            if not self._online or len(blocked_kinds) == len(_KINDS):
                break
            if call.id not in self._queue:  # answered while an earlier one was written
                continue
            if call.done():
                del self._queue[call.id]
                continue
            if call.kind in blocked_kinds or not blocked_keys.isdisjoint(call.keys):
                blocked_keys |= call.keys  # later requests to these conversations stay behind it
                continue
            bucket = self._buckets[call.kind]
            now = loop.time()
            cost = 0 if call.id in self._set_aside else call.cost
            wait = bucket.wait_s(cost, now)
            if wait > 0:
                blocked_kinds.add(call.kind)
                blocked_keys |= call.keys
                soonest = wait if soonest is None else min(soonest, wait)
                continue
            bucket.take(cost, now)
            del self._queue[call.id]
            self._on_wire[call.id] = call
            self._busy |= call.keys
            blocked_keys |= call.keys
            try:
                await self._release(call)
            except Exception:  # a bug here must not stall every request behind it
                log.exception("releasing a %s request failed", call.kind)
        return soonest
