"""``clipwire chat``: a small line-based terminal client for trying a hub by hand.

It prints the conversations from the welcome, then every event as a readable
line (``[dm bob] bob: hi``, ``[dm bob] bob shared a video: Cat https://...``),
and reads commands from stdin without blocking the event loop. Stdin may be a
terminal or a pipe; at end of input it finishes the commands already read and
exits, so ``printf '/to bob hi\\n' | clipwire chat --as alice`` works::

    /to USER TEXT                      direct message (on the default policy: to a friend)
    /say CONV TEXT                     to a conversation (id, group title or DM peer)
    /share USER_OR_CONV URL [CAPTION]  share a video card
    /group TITLE USER...               create a group
    /history CONV                      the last messages of a conversation, with reactions
    /convs, /friends                   list your conversations, friends and requests
    /friend, /accept, /unfriend, /block, /unblock USER
    /react CONV SEQ EMOJI [AT]         react (AT: a moment of a video, 12000 or 0:12)
    /reply CONV SEQ [AT] TEXT          reply to a message, or to a moment of a video
    /read CONV [SEQ], /unsend CONV SEQ, /watch CONV VIDEO_ID POS play|pause
    /help, /quit
    TEXT                               to the conversation you last wrote to

Incoming presence, typing, read receipts, reactions, unsends, watch-together
updates and friend requests are printed as lines too (``bob is online``,
``[dm bob] bob reacted 🔥 to #3 at 0:12``).
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
    FriendEvent,
    Message,
    Presence,
    Reaction,
    ReactionSummary,
    ReadReceipt,
    Reconnected,
    Typing,
    Unsent,
    VideoCard,
    WatchState,
)

__all__ = ["HELP", "clock", "parse_ms", "run_chat", "video_id_for", "visible"]

HELP = """commands:
  /to USER TEXT                      send a direct message (DMs need friends by default)
  /say CONV TEXT                     send to a conversation (id, group title or DM peer)
  /share USER_OR_CONV URL [CAPTION]  share a video card
  /group TITLE USER...               create a group with these members
  /history CONV                      show the last messages of a conversation (#SEQ, reactions)
  /convs                             list your conversations
  /friend USER                       ask USER to be friends
  /accept USER                       accept USER's friend request
  /unfriend USER                     end a friendship, or withdraw or decline a request
  /block USER, /unblock USER         block (no DMs, presence or typing; hidden in groups)
  /friends                           your friends (online or last seen) and pending requests
  /react CONV SEQ EMOJI [AT_MS]      react to message #SEQ; AT_MS pins it to a moment of a video
  /reply CONV SEQ [AT_MS] TEXT       reply to message #SEQ, or to a moment of its video
  /read CONV [SEQ]                   mark read up to #SEQ (default: the newest)
  /unsend CONV SEQ                   take back your message #SEQ
  /watch CONV VIDEO_ID POS_MS play|pause  set the conversation's watch-together state
  /help                              this text
  /quit                              leave (end of input does too)
  TEXT                               send to the conversation you last wrote to
AT_MS and POS_MS are milliseconds (12000) or minutes:seconds (0:12)."""

HISTORY_SHOWN = 20

# Bidirectional formatting characters: they reorder what follows on the line, so a
# name or text could make a line read as something it is not.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _shown(char: str) -> str:
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:  # C0, DEL and C1: ESC, OSC, bell, line breaks
        return f"\\x{code:02x}"
    if char in _BIDI or char in ("\u2028", "\u2029"):
        return f"\\u{code:04x}"
    return char


def visible(line: str) -> str:
    """``line`` safe for a terminal: control and bidi characters written out as ``\\x1b``
    or ``\\u202e``. Texts, names and titles come from other users, and printed raw an
    escape sequence in them could clear the screen, retitle the window or write to the
    clipboard, and a line break could forge a line."""
    if line.isprintable() and not _BIDI.intersection(line):
        return line
    return "".join(_shown(char) for char in line)


def clock(ms: int) -> str:
    """A position in a video as ``m:ss`` (``h:mm:ss`` past an hour)."""
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes >= 60:
        return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def parse_ms(text: str) -> int | None:
    """``12000`` (ms) or ``0:12`` / ``1:02:03`` (a clock) as milliseconds; ``None`` otherwise."""
    if text.isdigit():
        return int(text)
    parts = text.split(":")
    if 2 <= len(parts) <= 3 and all(p.isdigit() for p in parts) and all(len(p) <= 2 for p in parts[1:]):
        seconds = 0
        for part in parts:
            seconds = seconds * 60 + int(part)
        return seconds * 1000
    return None


def _seq(text: str) -> int:
    value = text.removeprefix("#")
    if not value.isdigit() or int(value) == 0:
        raise ValueError(f"{text!r} is not a message number (#SEQ, as /history shows)")
    return int(value)


def _moment(text: str) -> int:
    value = parse_ms(text)
    if value is None:
        raise ValueError(f"{text!r} is not a position (milliseconds, or minutes:seconds)")
    return value


def _summary(reactions: tuple[ReactionSummary, ...]) -> str:
    parts = []
    for r in reactions:
        part = f"{r.emoji} {r.count}" + (" (you)" if r.me else "")
        if r.moments:
            part += " at " + " ".join(clock(m) for m in r.moments)
        parts.append(part)
    return "  [" + ", ".join(parts) + "]" if parts else ""


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
        self.out: Callable[[str], None] = lambda line: out(visible(line))  # every line shown
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
        if conv.watch is not None:
            state = "playing" if conv.watch.playing else "paused"
            line += f"; watching {conv.watch.video_id} at {clock(conv.watch.pos_ms)} ({state})"
        return line

    def show_conversations(self) -> None:
        convs = sorted(self.client.conversations.values(), key=lambda c: -c.last_seq)
        if not convs:
            self.out("no conversations yet: /to USER TEXT starts one")
        for conv in convs:
            self.out(self.describe(conv))

    def show_friends(self, *, welcome: bool = False) -> None:
        """Friends with their online state, then pending requests."""
        client = self.client
        if client.friends:
            self.out("friends: " + ", ".join(self.presence_text(p) for p in
                                              sorted(client.friends.values(), key=lambda p: p.user)))
        elif not welcome or not client.friend_requests:
            self.out("no friends yet: /friend USER asks someone")
        for request in client.friend_requests:
            if request.direction == "in":
                self.out(f"friend request from {request.user} — /accept {request.user}")
            else:
                self.out(f"friend request to {request.user} is pending")

    @staticmethod
    def presence_text(p: Presence) -> str:
        if p.online:
            return f"{p.user} (online)"
        if p.last_seen:
            return f"{p.user} (last seen {time.strftime('%H:%M', time.localtime(p.last_seen / 1000))})"
        return f"{p.user} (offline)"

    def who(self, user: str) -> str:
        return "you" if user == self.client.user else user

    def reaction_line(self, r: Reaction) -> str:
        where = self.label(r.conv)
        if not r.on:
            return f"{where} {self.who(r.user)} took back {r.emoji} on #{r.seq}"
        moment = f" at {clock(r.at_ms)}" if r.at_ms is not None else ""
        return f"{where} {self.who(r.user)} reacted {r.emoji} to #{r.seq}{moment}"

    def watch_line(self, w: WatchState) -> str:
        doing = "is watching" if w.playing else "paused"
        if w.by == self.client.user:
            doing = "are watching" if w.playing else "paused"
        return f"{self.label(w.conv)} {self.who(w.by)} {doing} {w.video_id} at {clock(w.pos_ms)}"

    def friend_line(self, e: FriendEvent) -> str:
        if e.state == "requested" and e.direction == "out":
            return f"*** you asked {e.user} to be friends"
        if e.state == "requested":
            return f"*** {e.user} sent you a friend request — /accept {e.user}"
        if e.state == "accepted":
            return f"*** you and {e.user} are friends now"
        if e.was == "out":
            return f"*** your friend request to {e.user} was withdrawn or declined"
        if e.was == "in":
            return f"*** {e.user}'s friend request was withdrawn or declined"
        return f"*** you and {e.user} are no longer friends"

    def message_line(self, msg: Message) -> str:
        where = self.label(msg.conv)
        if msg.unsent:
            return f"{where} {msg.sender} unsent message #{msg.seq}"
        if msg.hidden:
            return f"{where} #{msg.seq} from {msg.sender} is hidden (you block {msg.sender})"
        replying = ""
        if msg.reply is not None:
            at = f" at {clock(msg.reply.at_ms)}" if msg.reply.at_ms is not None else ""
            replying = f"(re #{msg.reply.seq}{at}) "
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
        if isinstance(event, Presence):
            return f"*** {event.user} is {'online' if event.online else 'offline'}"
        if isinstance(event, Typing):
            return f"{self.label(event.conv)} {event.user} is typing…"
        if isinstance(event, ReadReceipt):
            return f"{self.label(event.conv)} {self.who(event.user)} read up to #{event.seq}"
        if isinstance(event, Reaction):
            return self.reaction_line(event)
        if isinstance(event, Unsent):
            return f"{self.label(event.conv)} message #{event.seq} was unsent"
        if isinstance(event, WatchState):
            return self.watch_line(event)
        if isinstance(event, FriendEvent):
            return self.friend_line(event)
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

    def need_conv(self, name: str) -> str:
        conv = self.resolve(name)
        if conv is None:
            raise ValueError(f"no conversation {name!r} (/convs lists them)")
        return conv

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
            for line in HELP.splitlines():
                self.out(line)
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
        elif name == "/friends" and not args:
            self.show_friends()
        elif name in _SOCIAL and len(args) == 1:
            await self.social(name, args[0])
        elif name == "/react" and len(args) in (3, 4):
            conv, seq = self.need_conv(args[0]), _seq(args[1])
            at_ms = _moment(args[3]) if len(args) == 4 else None
            await self.client.react(conv, seq, args[2], at_ms=at_ms)
            self.out(self.reaction_line(Reaction(conv, seq, self.client.user, args[2], True, at_ms)))
        elif name == "/reply" and len(args) >= 3:
            await self.reply(rest)
        elif name == "/read" and len(args) in (1, 2):
            conv = self.need_conv(args[0])
            seq = _seq(args[1]) if len(args) == 2 else self.client.conversations[conv].last_seq
            marker = await self.client.read(conv, seq)
            self.out(f"*** {self.label(conv)} read up to #{marker}")
        elif name == "/unsend" and len(args) == 2:
            conv, seq = self.need_conv(args[0]), _seq(args[1])
            await self.client.unsend(conv, seq)
            self.out(f"*** {self.label(conv)} you unsent #{seq}")
        elif name == "/watch" and len(args) == 4 and args[3] in ("play", "pause"):
            state = await self.client.watch(self.need_conv(args[0]), args[1], _moment(args[2]),
                                            args[3] == "play")
            self.out(self.watch_line(state))
        else:
            self.out(f"!!! not understood: {name} {rest}".rstrip() + " (/help lists commands)")
        return True

    async def social(self, name: str, user: str) -> None:
        """/friend, /accept, /unfriend, /block, /unblock: the hub's friend events say the rest."""
        client = self.client
        if name == "/friend" and user in client.friends:
            self.out(f"*** {user} is already your friend")
        elif name == "/friend":
            await client.friend_request(user)
        elif name == "/accept":
            await client.accept_friend(user)
        elif name == "/unfriend":
            if user not in client.friends and not any(r.user == user for r in client.friend_requests):
                self.out(f"*** {user} is not your friend")
                return
            await client.remove_friend(user)
        elif name == "/block":
            await client.block(user)
            self.out(f"*** you blocked {user}: no DMs, presence or typing either way; "
                     "their group messages are hidden")
        else:
            await client.unblock(user)
            self.out(f"*** you unblocked {user}")

    async def reply(self, rest: str) -> None:
        """``CONV SEQ [AT_MS] TEXT``: a number or clock right after SEQ is the moment."""
        target, seq_text, tail = rest.split(None, 2)
        conv, seq = self.need_conv(target), _seq(seq_text)
        first, _, text = tail.partition(" ")
        at_ms = parse_ms(first) if text.strip() else None
        if at_ms is None:
            text = tail
        msg = await self.client.reply_to(conv, seq, text.strip(), at_ms)
        self.last_target = (None, conv)
        self.out(self.message_line(msg))

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
            self.out(f"  #{msg.seq} {stamp} {self.message_line(msg)}{_summary(msg.reactions)}")


_SOCIAL = ("/friend", "/accept", "/unfriend", "/block", "/unblock")


def _print(line: str) -> None:
    try:
        print(line, flush=True)
    except UnicodeEncodeError:  # a terminal that cannot show emoji gets "?" instead
        encoding = sys.stdout.encoding or "ascii"
        print(line.encode(encoding, "replace").decode(encoding), flush=True)


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
    chat.out(f"connected to {url} as {client.user}; {len(client.conversations)} conversations "
             "(/help lists commands)")
    chat.show_conversations()
    chat.show_friends(welcome=True)
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
