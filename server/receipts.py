"""What members do with a message once it is sent: read it, react, take it back.

A read marker only moves forward. A reaction is one (user, emoji) per message,
optionally pinned to a moment of a shared video. Unsend keeps the ``seq`` (the
order has no holes) but deletes the body and its reactions from the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clipwire.protocol import ErrorCode, RequestError, encode
from clipwire.protocol import frames as f

from .conversations import NO_ACCESS
from .store.base import Conversation, StoredMessage

if TYPE_CHECKING:
    from .hub import Handler, Hub
    from .session import Session

NO_MESSAGE = "no such message in this conversation"


class Receipts:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def handlers(self) -> dict[type, Handler]:
        return {f.Read: self._read, f.React: self._react, f.Unsend: self._unsend}

    async def _member(self, user: str, conv_id: str) -> Conversation:
        conv = await self.hub.convs.joined(conv_id, user)
        if conv is None:
            raise RequestError(ErrorCode.FORBIDDEN, NO_ACCESS)
        return conv

    async def _message(self, conv: Conversation, seq: int) -> StoredMessage:
        msg = await self.hub.store.get_message(conv.conv, seq) if 0 < seq <= conv.last_seq else None
        if msg is None:
            raise RequestError(ErrorCode.NOT_FOUND, NO_MESSAGE)
        return msg

    async def _read(self, session: Session, req: f.Read) -> None:
        self.hub.rates.check(session, "read", (req.conv, req.seq))
        conv = await self._member(session.user, req.conv)
        if req.seq > conv.last_seq:
            raise RequestError.bad(f"'seq' is beyond the newest message ({conv.last_seq})")
        marker = await self.hub.store.set_read(conv.conv, session.user, req.seq)
        session.reply({"t": "ok", "id": req.id, "read_seq": marker})
        if marker == req.seq:
            event = {"t": "read", "conv": conv.conv, "user": session.user, "seq": marker}
            self.hub.deliver(conv.members, encode(event), skip=session, conv=conv.conv)
            self.hub.emit("message.read", {"conv": conv.conv, "user": session.user, "seq": marker})

    async def _react(self, session: Session, req: f.React) -> None:
        self.hub.rates.check(session, "react", (req.conv, req.seq, req.emoji, req.on, req.at_ms))
        conv = await self._member(session.user, req.conv)
        target = await self._message(conv, req.seq)
        if target.unsent:
            raise RequestError(ErrorCode.NOT_FOUND, NO_MESSAGE)
        if req.at_ms is not None and req.on:
            duration = (target.video or {}).get("duration_ms")
            if target.kind != "video":
                raise RequestError.bad("'at_ms' is for reactions to a video share")
            if duration is not None and req.at_ms > duration:
                raise RequestError.bad("'at_ms' lies beyond the video's duration")
        changed = await self.hub.store.set_reaction(conv.conv, req.seq, session.user, req.emoji,
                                                    req.on, req.at_ms if req.on else None,
                                                    self.hub.now_ms())
        session.reply({"t": "ok", "id": req.id})
        if changed:
            event: dict[str, Any] = {"t": "reaction", "conv": conv.conv, "seq": req.seq,
                                     "user": session.user, "emoji": req.emoji, "on": req.on}
            if req.at_ms is not None and req.on:
                event["at_ms"] = req.at_ms
            record = await self.hub.social.graph.record(session.user)
            audience = [u for u in conv.members if u not in record.blocked_by]
            self.hub.deliver(audience, encode(event), skip=session, conv=conv.conv)
            self.hub.emit("reaction", {k: v for k, v in event.items() if k != "t"})

    async def _unsend(self, session: Session, req: f.Unsend) -> None:
        conv = await self._member(session.user, req.conv)
        target = await self._message(conv, req.seq)
        if target.sender != session.user:
            raise RequestError(ErrorCode.FORBIDDEN, "only the sender can unsend a message")
        if not target.unsent:
            await self.hub.store.unsend(conv.conv, req.seq)
            event = {"t": "unsent", "conv": conv.conv, "seq": req.seq}
            self.hub.deliver(conv.members, encode(event), skip=session, conv=conv.conv)
        session.reply({"t": "ok", "id": req.id})
