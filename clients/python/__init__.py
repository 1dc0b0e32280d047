"""Clipwire client SDK for asyncio: requests, typed events, reconnect and resume.

Usage::

    from clipwire.client import connect, Message, Reaction

    async with connect("ws://127.0.0.1:8765/ws", token=jwt, token_provider=fetch_token) as client:
        print(client.user, [c.name for c in client.conversations.values()], list(client.friends))
        sent = await client.send_text("hi bob", to="bob")        # -> Message(seq=..); DMs need
        await client.share_video({"id": "v1", "url": "https://x.example/v1"}, to=["bob"])  # friends
        older = await client.history(sent.conv, before=sent.seq, limit=20)
        await client.react(sent.conv, sent.seq, "🔥")
        async for event in client:            # each message exactly once, in order
            if isinstance(event, Message):
                print(event.conv, event.seq, event.sender, event.text)
            elif isinstance(event, Reaction):  # also Presence, Typing, ReadReceipt, Unsent,
                print(event.user, event.emoji)  # WatchState, FriendEvent

Friends (``friend_request``, ``accept_friend``, ``remove_friend``), ``block``,
``presence``, ``read``, ``react``, ``unsend``, ``watch`` and ``typing`` each have a
helper; ``client.friends``, ``client.friend_requests`` and each conversation's
``read_seq`` and ``watch`` follow the events.

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
    FriendEvent,
    FriendRequest,
    Message,
    Presence,
    Reaction,
    ReactionSummary,
    ReadReceipt,
    Reconnected,
    Reply,
    ShareResult,
    Typing,
    Unsent,
    VideoCard,
    WatchState,
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
    "FriendEvent",
    "FriendRequest",
    "HubInternalError",
    "Message",
    "NotFound",
    "Presence",
    "RateLimited",
    "Reaction",
    "ReactionSummary",
    "ReadReceipt",
    "Reconnected",
    "Reply",
    "RequestFailed",
    "RequestTimeout",
    "ShareResult",
    "TokenProvider",
    "TooLarge",
    "Typing",
    "Unauthorized",
    "Unavailable",
    "Unsent",
    "VideoCard",
    "WatchState",
    "connect",
    "new_cmid",
]
