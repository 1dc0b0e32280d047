"""Live signals that are never stored: typing, and watch-together playback state.

Typing is rate-limited per connection and per user (across nodes with Redis,
see ratelimit.py) and dropped silently past the limit: a chatty keyboard should
cost nothing and never produce an error. Watch state is one small record per
conversation, last writer wins by hub time, forgotten after ``watch_ttl_s``
without an update.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clipwire.protocol import ErrorCode, RequestError, encode
from clipwire.protocol import frames as f

from .conversations import NO_ACCESS
from .ratelimit import TYPING_BURST, TokenBucket

if TYPE_CHECKING:
    from .hub import Handler, Hub
    from .session import Session


@dataclass(frozen=True, slots=True)
class WatchState:
    video_id: str
    pos_ms: int
    playing: bool
    by: str
    ts: int

    def to_wire(self) -> dict[str, Any]:
        return {"video_id": self.video_id, "pos_ms": self.pos_ms, "playing": self.playing,
                "by": self.by, "ts": self.ts}


class LiveSignals:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        # Ordered by last update, oldest first, so expiry only looks at the front.
        self._watch: dict[str, WatchState] = {}

    def handlers(self) -> dict[type, Handler]:
        return {f.Typing: self._typing, f.Watch: self._watch_request}

    async def _typing(self, session: Session, req: f.Typing) -> None:
        bucket = session.typing_bucket
        if bucket is None:
            bucket = session.typing_bucket = TokenBucket(self.hub.config.typing_per_s, TYPING_BURST)
        if not bucket.take() or not self.hub.rates.user_allows(session.user, "typing"):
            return
        conv = await self.hub.convs.get(req.conv)
        if conv is None or session.user not in conv.members:
            return
        record = await self.hub.social.graph.record(session.user)
        hidden = record.blocking | record.blocked_by
        audience = [u for u in conv.members if u != session.user and u not in hidden]
        self.hub.deliver(audience, encode({"t": "typing", "conv": conv.conv, "user": session.user}),
                         conv=conv.conv, ephemeral=True)

    async def _watch_request(self, session: Session, req: f.Watch) -> None:
        self.hub.rates.check(session, "watch", (req.conv, req.video_id, req.pos_ms, req.playing))
        conv = await self.hub.convs.joined(req.conv, session.user)
        if conv is None:
            raise RequestError(ErrorCode.FORBIDDEN, NO_ACCESS)
        previous = self._watch.pop(conv.conv, None)
        ts = self.hub.now_ms()
        if previous is not None and ts <= previous.ts:
            ts = previous.ts + 1  # hub time only moves forward, so the last writer wins
        state = WatchState(req.video_id, req.pos_ms, req.playing, session.user, ts)
        self._watch[conv.conv] = state
        self._expire(ts)
        session.reply({"t": "ok", "id": req.id, "ts": ts})
        event = {"t": "watch", "conv": conv.conv, **state.to_wire()}
        # Like typing: nothing of a blocked user's activity, either way.
        record = await self.hub.social.graph.record(session.user)
        hidden = record.blocking | record.blocked_by
        audience = [u for u in conv.members if u not in hidden]
        self.hub.deliver(audience, encode(event), skip=session, conv=conv.conv, ephemeral=True)

    def current(self, conv: str, hidden: Collection[str] = ()) -> WatchState | None:
        """The live playback state of ``conv``, if one was set recently by someone not
        ``hidden`` (blocked by the asker, or blocking them)."""
        state = self._watch.get(conv)
        if state is None or state.ts < self.hub.now_ms() - self.hub.config.watch_ttl_s * 1000:
            return None
        return None if state.by in hidden else state

    def _expire(self, now_ms: int) -> None:
        cutoff = now_ms - self.hub.config.watch_ttl_s * 1000
        while self._watch:
            conv, state = next(iter(self._watch.items()))
            if state.ts >= cutoff:
                break
            del self._watch[conv]
