"""Second looks: a refusal read from a node's cache is confirmed by the store first.

Each node caches the social graph (social.py) and conversation membership
(conversations.py), and drops an entry when another node's change reaches it
through the broker: a moment after that node acknowledged the change. A client
told of the change (the ``ok`` of a friend request, a ``group.add``) may ask
this node within that moment. An allow read from the cache is answered at once,
as ever; a decision that would refuse (``not_found``, ``forbidden``) is taken
again on a fresh read of the store, so one node never refuses what another has
acknowledged.

The fresh reads are bounded, so that refusals cannot make the hub read the
store for every bogus request (a client writing to random strangers, or to
conversations it guesses): each user has ``BURST`` second looks, refilled at
``PER_S`` a second, and past them the cached refusal stands. A legitimate
client needs one only in the moment after a change made elsewhere. A hub
without other nodes takes none: its cache changes with its store.
"""

from __future__ import annotations

from .ratelimit import MAX_USERS_TRACKED, TokenBucket

BURST = 5.0
PER_S = 1.0


class SecondLooks:
    """Whether a user's refusal may be checked against the store now (a bucket per user)."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, user: str, now: float | None = None) -> bool:
        """Spend one of ``user``'s second looks, if one is left (``now``: monotonic seconds)."""
        if not self._enabled:
            return False
        bucket = self._buckets.get(user)
        if bucket is None:
            if len(self._buckets) >= MAX_USERS_TRACKED:  # the oldest forgets: it starts full again
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[user] = TokenBucket(PER_S, BURST)
        return bucket.take(1, now)
