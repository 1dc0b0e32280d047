"""Rate limits: token buckets per connection and per user, for each kind of action.

A request over a limit is refused with ``rate_limited`` and a ``retry_after_ms``
before anything is stored; a connection that keeps going past its limits is
closed with 4008. Typing is limited in live.py and dropped silently instead.
"""

from __future__ import annotations

import time
from typing import Any

from clipwire.protocol import ErrorCode, RequestError


class TokenBucket:
    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def take(self, cost: float = 1, now: float | None = None) -> bool:
        """Spend ``cost`` tokens if there are that many; False means over the limit."""
        now = time.monotonic() if now is None else now
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def wait_s(self, cost: float = 1) -> float:
        """Seconds until ``cost`` tokens will be there (after a refused ``take``)."""
        return max(0.0, (min(cost, self._burst) - self._tokens) / self._rate)


# kind -> (setting holding the rate per second per connection); burst is twice the rate,
# and a user's devices together get twice a connection's rate and burst.
KINDS = {"send": "rate_send_per_s", "history": "rate_history_per_s", "friend": "rate_friend_per_s"}
STRIKES_PER_S = 1.0
MAX_USERS_TRACKED = 100_000


class RateLimiter:
    def __init__(self, config: Any) -> None:
        self._rates = {kind: float(getattr(config, setting)) for kind, setting in KINDS.items()}
        self._strikes_burst = float(config.rate_strikes_max)
        self._users: dict[str, dict[str, TokenBucket]] = {}

    def _bucket(self, owner: dict[str, TokenBucket], kind: str, scale: float) -> TokenBucket:
        bucket = owner.get(kind)
        if bucket is None:
            rate = self._rates[kind] * scale
            bucket = owner[kind] = TokenBucket(rate, max(1.0, rate * 2))
        return bucket

    def check(self, session: Any, kind: str, cost: int = 1) -> None:
        """Spend ``cost`` of ``kind`` for ``session`` and its user, or raise ``rate_limited``."""
        mine = self._bucket(session.buckets, kind, 1.0)
        user = self._users.get(session.user)
        if user is None:
            if len(self._users) >= MAX_USERS_TRACKED:
                del self._users[next(iter(self._users))]
            user = self._users[session.user] = {}
        theirs = self._bucket(user, kind, 2.0)
        if mine.take(cost):
            if theirs.take(cost):
                return
            wait = theirs.wait_s(cost)
        else:
            wait = mine.wait_s(cost)
        strikes = session.buckets.get("strikes")
        if strikes is None:
            strikes = session.buckets["strikes"] = TokenBucket(STRIKES_PER_S, self._strikes_burst)
        if not strikes.take():
            session.close(4008, "rate limit exceeded repeatedly")
        raise RequestError(ErrorCode.RATE_LIMITED, f"too many {kind} requests; slow down",
                           retry_after_ms=max(1, int(wait * 1000)))
