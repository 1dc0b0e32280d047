"""``clipwire chat``: a small line-based terminal client for trying a hub by hand.

It prints the conversations from the welcome, then every event as a readable
line (``[dm bob] bob: hi``, ``[dm bob] bob shared a video: Cat https://...``),
and reads commands from stdin without blocking the event loop. Stdin may be a
terminal or a pipe; at end of input it finishes the commands already read and
exits, so ``printf '/to bob hi\\n' | clipwire chat --as alice`` works::

    /to USER TEXT                      direct message
    /say CONV TEXT                     to a conversation (id, group title or DM peer)
    /share USER_OR_CONV URL [CAPTION]  share a video card
    /group TITLE USER...               create a group
    /history CONV                      the last messages of a conversation
    /convs                             list your conversations
    /help, /quit
    TEXT                               to the conversation you last wrote to
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from .client import Client, connect
from .errors import ClientClosed, ClientError
from .models import (
    ClientEvent,
    Conversation,
    ConversationChanged,
    Disconnected,
    Event,
    Message,
    Reconnected,
    VideoCard,
)

__all__ = ["HELP", "run_chat", "video_id_for"]

HELP = """commands:
  /to USER TEXT                      send a direct message
  /say CONV TEXT                     send to a conversation (id, group title or DM peer)
  /share USER_OR_CONV URL [CAPTION]  share a video card
  /group TITLE USER...               create a group with these members
  /history CONV                      show the last messages of a conversation
  /convs                             list your conversations
  /help                              this text
  /quit                              leave (end of input does too)
  TEXT                               send to the conversation you last wrote to"""

HISTORY_SHOWN = 20


def video_id_for(url: str) -> str:
    """A video id derived from its URL: a ``v`` query value, else the last path segment."""
    parts = urlsplit(url)
    candidates = parse_qs(parts.query).get("v", []) + [s for s in parts.path.split("/") if s][-1:]
    for candidate in candidates:
        if 0 < len(candidate) <= 128 and candidate.isprintable():
            return candidate
    return hashlib.sha1(url.encode()).hexdigest()[:16]


class _Chat:
    def __init__(self, client: Client, out: Callable[[str], None]) -> None:
        self.client = client
        self.out = out
        self.last_target: tuple[str | None, str | None] | None = None  # (user, conv)

    # -- showing things -----------------------------------------------------

    def label(self, conv_id: str) -> str:
        conv = self.client.conversations.get(conv_id)
        if conv is None:
            return f"[{conv_id}]"
        return f"[{conv.kind} {conv.name}]"

    def describe(self, conv: Conversation) -> str:
        line = f"  {self.label(conv.conv)} {conv.conv}: {conv.last_seq} messages"
        if conv.unread:
            line += f", {conv.unread} unread"
        if conv.kind == "group" and conv.members:
            line += f"; members {', '.join(conv.members)}"
        return line

    def show_conversations(self) -> None:
        convs = sorted(self.client.conversations.values(), key=lambda c: -c.last_seq)
        if not convs:
            self.out("no conversations yet: /to USER TEXT starts one")
        for conv in convs:
            self.out(self.describe(conv))

    def message_line(self, msg: Message) -> str:
        where = self.label(msg.conv)
        if msg.unsent:
            return f"{where} {msg.sender} unsent message #{msg.seq}"
        replying = f"(re #{msg.reply.seq}) " if msg.reply is not None else ""
        if msg.kind == "video" and msg.video is not None:
            caption = f"{msg.video.caption} " if msg.video.caption else ""
            note = f" -- {msg.text}" if msg.text else ""
            return f"{where} {msg.sender} shared a video: {replying}{caption}{msg.video.url}{note}"
        return f"{where} {msg.sender}: {replying}{msg.text or ''}"

    def event_line(self, event: ClientEvent) -> str:
        if isinstance(event, Message):
            return self.message_line(event)
        if isinstance(event, ConversationChanged):
            conv = event.conversation
            name = f"[{conv.kind} {conv.name}]"
            if event.removed:
                return f"*** {name} you are no longer in this conversation"
            if conv.kind == "group":
                return f"*** {name} group with {', '.join(conv.members)} ({conv.conv})"
            return f"*** {name} conversation {conv.conv}"
        if isinstance(event, Disconnected):
            then = "reconnecting..." if event.reconnecting else "giving up"
            return f"*** connection closed ({event.code}{' ' + event.reason if event.reason else ''}); {then}"
        if isinstance(event, Reconnected):
            return "*** reconnected"
        assert isinstance(event, Event)
        details = " ".join(f"{k}={v}" for k, v in event.data.items())
        return f"*** {event.type} {details}"

    async def print_events(self) -> None:
        try:
            async for event in self.client:
                self.out(self.event_line(event))
        except ClientClosed as exc:
            self.out(f"*** disconnected for good: {exc}")

    # -- commands -------------------------------------------------------------

    def resolve(self, name: str) -> str | None:
        """A conversation id for a conv id, a group title or a DM peer."""
        convs = self.client.conversations
        if name in convs:
            return name
        for kind in ("group", "dm"):
            for conv in convs.values():
                if conv.kind == kind and conv.name == name:
                    return conv.conv
        return None

    async def command(self, line: str) -> bool:
        """Run one input line; False means quit."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/"):
            if self.last_target is None:
                self.out("!!! say who to: /to USER TEXT or /say CONV TEXT (/help lists commands)")
                return True
            user, conv = self.last_target
            await self.send(line, user, conv)
            return True
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            return await self._run(name, rest)
        except ClientError as exc:
            self.out(f"!!! {name}: {exc}")
        except ValueError as exc:
            self.out(f"!!! {name}: {exc}")
        return True

    async def _run(self, name: str, rest: str) -> bool:
        args = rest.split()
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            self.out(HELP)
        elif name == "/convs":
            self.show_conversations()
        elif name == "/to" and len(args) >= 2:
            await self.send(rest.split(None, 1)[1], args[0], None)
        elif name == "/say" and len(args) >= 2:
            conv = self.resolve(args[0])
            text = rest.split(None, 1)[1]
            if conv is None:  # not a conversation we know: treat it as a user
                await self.send(text, args[0], None)
            else:
                await self.send(text, None, conv)
        elif name == "/share" and len(args) >= 2:
            await self.share(args[0], args[1], " ".join(args[2:]) or None)
        elif name == "/group" and len(args) >= 2:
            conv = await self.client.create_group(args[1:], args[0])
            self.out(f"*** created group {args[0]} ({conv}) with {', '.join(args[1:])}")
            self.last_target = (None, conv)
        elif name == "/history" and len(args) == 1:
            await self.history(args[0])
        else:
            self.out(f"!!! not understood: {name} {rest}".rstrip() + " (/help lists commands)")
        return True

    async def send(self, text: str, user: str | None, conv: str | None) -> None:
        msg = await self.client.send_text(text, to=user, conv=conv)
        self.last_target = (user, conv)
        self.out(self.message_line(msg))

    async def share(self, target: str, url: str, caption: str | None) -> None:
        card = VideoCard(id=video_id_for(url), url=url, caption=caption)
        conv = self.resolve(target)
        if conv is not None and self.client.conversations[conv].kind == "group":
            results = await self.client.share_video(card, convs=[conv])
        else:
            peer = self.client.conversations[conv].name if conv is not None else target
            results = await self.client.share_video(card, to=[peer])
        for result in results:
            if result.ok and result.conv is not None and result.seq is not None:
                self.out(self.message_line(Message(result.conv, result.seq, self.client.user,
                                                   result.ts or 0, "video", video=card)))
            else:
                self.out(f"!!! /share to {result.target}: {result.error}")

    async def history(self, name: str) -> None:
        conv = self.resolve(name)
        if conv is None:
            self.out(f"!!! /history: no conversation {name!r} (/convs lists them)")
            return
        messages = await self.client.history(conv, limit=HISTORY_SHOWN)
        self.out(f"--- {self.label(conv)} last {len(messages)} messages")
        for msg in messages:
            stamp = time.strftime("%H:%M", time.localtime(msg.ts / 1000))
            self.out(f"  #{msg.seq} {stamp} {self.message_line(msg)}")


def _print(line: str) -> None:
    print(line, flush=True)


async def _stdin_lines(queue: asyncio.Queue[str | None]) -> Callable[[], None]:
    """Feed stdin's lines (then None at end of input) into ``queue``; return a stopper.

    A pipe or socket is read by the event loop itself; a terminal or a file by a
    daemon thread, so the loop never blocks on input.
    """
    loop = asyncio.get_running_loop()
    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        mode = 0
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        reader = asyncio.StreamReader()
        pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe)

        async def pump() -> None:
            while line := await reader.readline():
                await queue.put(line.decode(errors="replace"))
            await queue.put(None)

        task = loop.create_task(pump())

        def stop() -> None:
            task.cancel()
            transport.close()

        return stop

    def read() -> None:
        try:
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except (OSError, ValueError):
            pass
        with contextlib.suppress(RuntimeError):  # the loop may be gone already
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="clipwire-chat-stdin", daemon=True).start()
    return lambda: None


async def run_chat(url: str, token: str, *, out: Callable[[str], None] = _print) -> None:
    """Chat on the hub at ``url`` with ``token`` until /quit or the end of stdin."""
    try:
        client = await connect(url, token, device="clipwire-chat")
    except ClientError as exc:
        raise SystemExit(f"clipwire chat: {exc}") from None
    chat = _Chat(client, out)
    out(f"connected to {url} as {client.user}; {len(client.conversations)} conversations "
        "(/help lists commands)")
    chat.show_conversations()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    stop_input = await _stdin_lines(lines)
    printer = asyncio.get_running_loop().create_task(chat.print_events())
    try:
        while True:
            getter = asyncio.ensure_future(lines.get())
            await asyncio.wait([getter, printer], return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():  # the client closed for good
                getter.cancel()
                break
            line = getter.result()
            if line is None or not await chat.command(line):
                break
    finally:
        stop_input()
        await client.aclose()
        await asyncio.gather(printer, return_exceptions=True)
