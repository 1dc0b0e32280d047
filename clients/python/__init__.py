"""Clipwire client SDK for asyncio: requests, typed events, reconnect and resume.

Usage::

    from clipwire.client import connect, Message

    async with connect("ws://127.0.0.1:8765/ws", token=jwt, token_provider=fetch_token) as client:
        print(client.user, [c.name for c in client.conversations.values()])
        sent = await client.send_text("hi bob", to="bob")        # -> Message(seq=..)
        await client.share_video({"id": "v1", "url": "https://x.example/v1"}, to=["bob"])
        older = await client.history(sent.conv, before=sent.seq, limit=20)
        async for event in client:            # each message exactly once, in order
            if isinstance(event, Message):
                print(event.conv, event.seq, event.sender, event.text)

Errors share one root, :class:`ClientError`; an ``error`` answer raises a
:class:`RequestFailed` subclass (``Forbidden``, ``BadRequest``, ...) with ``.code``.
"""

from __future__ import annotations

from .client import RECONNECT_CODES, REPEATABLE, Client, TokenProvider, connect, new_cmid
from .errors import (
    BadRequest,
    ClientClosed,
    ClientError,
    Conflict,
    ConnectFailed,
    ConnectionLost,
    Forbidden,
    HubInternalError,
    NotFound,
    RateLimited,
    RequestFailed,
    RequestTimeout,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from .models import (
    ClientEvent,
    Conversation,
    ConversationChanged,
    Disconnected,
    Event,
    Message,
    Reaction,
    Reconnected,
    Reply,
    ShareResult,
    VideoCard,
)

__all__ = [
    "RECONNECT_CODES",
    "REPEATABLE",
    "BadRequest",
    "Client",
    "ClientClosed",
    "ClientError",
    "ClientEvent",
    "Conflict",
    "ConnectFailed",
    "ConnectionLost",
    "Conversation",
    "ConversationChanged",
    "Disconnected",
    "Event",
    "Forbidden",
    "HubInternalError",
    "Message",
    "NotFound",
    "RateLimited",
    "Reaction",
    "Reconnected",
    "Reply",
    "RequestFailed",
    "RequestTimeout",
    "ShareResult",
    "TokenProvider",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "VideoCard",
    "connect",
    "new_cmid",
]
