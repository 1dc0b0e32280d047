"""Clipwire adapter: a lean raw-protocol client (not the SDK) so the generator stays cheap.

Sends are open-loop: ``ok`` replies are counted when they arrive, never awaited.
The connection tracks each conversation's highest contiguous ``seq`` so a
reconnect can resume, and fills ``gap`` events and ``seq`` jumps by paging
``history`` as SPEC section 10 asks of a client.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from clipwire.server import sign_token

from .base import CARD, Nodes, OnBody
from .msgpackconn import MsgpackConn

HISTORY_PAGE = 100


class RequestFailed(Exception):
    pass


class ClipwireConn(MsgpackConn):
    subprotocols = ("clipwire.v1",)

    def __init__(self, user: str, on_body: OnBody) -> None:
        super().__init__(user, on_body)
        self._nonce = secrets.token_hex(4)  # cmids stay unique across reconnects
        self.acked = 0
        self._errors = 0
        self.last_error: dict[str, Any] | None = None
        self.marks: dict[str, int] = {}  # conv -> highest contiguous seq held
        self._held: dict[str, set[int]] = {}
        self.received = 0  # distinct messages taken in (live, backlog and history)
        self.duplicates = 0
        self.pages = 0
        self.filling = False  # fill holes from history (set while catching up)
        self._fills: dict[str, asyncio.Task[None]] = {}
        self._want: dict[str, int] = {}
        self._caught_up = asyncio.Event()
        self.welcome: dict[str, Any] = {}

    @property
    def errors(self) -> int:
        return self._errors

    @classmethod
    async def start(cls, url: str, token: str, user: str, on_body: OnBody,
                    resume: dict[str, int] | None = None, timeout: float = 30.0) -> ClipwireConn:
        conn = cls(user, on_body)
        if resume:
            conn.marks = dict(resume)
        await conn.open(url, timeout)
        hello: dict[str, Any] = {"t": "hello", "v": 1, "token": token}
        if resume:
            hello["resume"] = resume
        try:
            conn.welcome = await conn.request(hello, timeout)
        except BaseException:
            await conn.close()
            raise
        return conn

    # -- requests -----------------------------------------------------------

    async def request(self, frame: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        reply = await super().request(frame, timeout)
        if reply.get("t") == "error":
            raise RequestFailed(f"{frame['t']}: {reply.get('code')}: {reply.get('message')}")
        return reply

    def _fire(self, frame: dict[str, Any]) -> None:
        rid = next(self._ids)
        frame["id"] = rid
        frame["cmid"] = f"{self._nonce}{rid}"
        self.write(frame)

    async def dm(self, to: str, body: str) -> None:
        self._fire({"t": "send", "to": to, "text": body})

    async def room(self, gid: str, body: str) -> None:
        self._fire({"t": "send", "conv": gid, "text": body})

    async def share(self, to: list[str], body: str) -> None:
        self._fire({"t": "share", "to": to, "video": CARD, "text": body})

    async def send_acked(self, to: str, body: str) -> dict[str, Any]:
        """A DM that is stored before this returns (for setting up backlogs)."""
        rid = next(self._ids)
        return await self.request({"t": "send", "to": to, "cmid": f"{self._nonce}a{rid}", "text": body})

    async def close(self) -> None:
        for task in self._fills.values():
            task.cancel()
        await super().close()

    # -- incoming -----------------------------------------------------------

    def on_frame(self, m: dict[str, Any]) -> None:
        t = m.get("t")
        if t == "msg":
            self._take(m)
        elif t == "ok" or t == "error":
            if self.resolve(m):
                return
            if t == "ok":
                self.acked += 1
                results = m.get("results")
                if results:
                    self._errors += sum(1 for r in results if "error" in r)
            else:
                self._errors += 1
                self.last_error = m
        elif t == "gap":
            self._fill(m["conv"], m["from_seq"], m["to_seq"])

    def _take(self, m: dict[str, Any]) -> None:
        """Apply one message (live, backlog or history page): drop repeats, advance the mark."""
        conv, seq = m["conv"], m["seq"]
        mark = self.marks.get(conv, 0)
        held = self._held.get(conv)
        if seq <= mark or (held is not None and seq in held):
            self.duplicates += 1
            return
        self.received += 1
        text = m.get("text")
        if text:
            self.on_body(text)
        if seq == mark + 1:
            mark = seq
            if held:
                while mark + 1 in held:
                    mark += 1
                    held.discard(mark)
            self.marks[conv] = mark
            if self._want and mark >= self._want.get(conv, 0):
                self._check_caught_up()
        else:
            self._held.setdefault(conv, set()).add(seq)
            if self.filling:
                self._fill(conv, mark + 1, seq - 1)

    def _fill(self, conv: str, lo: int, hi: int) -> None:
        running = self._fills.get(conv)
        if running is not None and not running.done():
            return  # the running fill re-checks the mark when it ends
        self._fills[conv] = asyncio.get_running_loop().create_task(self._page(conv, lo, hi))

    async def _page(self, conv: str, lo: int, hi: int) -> None:
        """Page ``lo..hi`` of ``conv`` from history, newest page first (SPEC 8.3)."""
        before = hi + 1
        while before > lo and before > self.marks.get(conv, 0) + 1:
            limit = min(before - lo, HISTORY_PAGE)
            reply = await self.request({"t": "history", "conv": conv, "before": before, "limit": limit})
            self.pages += 1
            page = reply.get("messages") or []
            if not page:
                break
            for m in page:
                self._take(m)
            before = min(m["seq"] for m in page)
        held = self._held.get(conv)
        if held and min(held) > self.marks.get(conv, 0) + 1:  # a hole left below what is held
            self._fills.pop(conv, None)
            self._fill(conv, self.marks.get(conv, 0) + 1, min(held) - 1)
        self._check_caught_up()

    def _check_caught_up(self) -> None:
        marks = self.marks
        if all(marks.get(c, 0) >= s for c, s in self._want.items()):
            self._caught_up.set()

    async def catch_up(self, timeout: float) -> None:
        """Wait until every conversation in the welcome is held up to its ``last_seq``.

        Conversations missing from the resume map get no backlog (SPEC 6.4), so
        they are paged from history like a gap.
        """
        self.filling = True
        self._want = {c["conv"]: c["last_seq"] for c in self.welcome.get("convs", ()) if c["last_seq"]}
        for conv, last in self._want.items():
            if conv not in self.marks:
                self._fill(conv, 1, last)
        self._check_caught_up()
        await asyncio.wait_for(self._caught_up.wait(), timeout)


class ClipwireDriver:
    name = "clipwire"
    resumes = True

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.nodes = Nodes(url, options)
        self.secret: str = options["secret"]
        self.timeout: float = options.get("timeout", 30.0)
        self._tokens: dict[str, str] = {}

    def token(self, user: str) -> str:
        tok = self._tokens.get(user)
        if tok is None:
            tok = self._tokens[user] = sign_token(self.secret, user, ttl_s=6 * 3600)
        return tok

    async def connect(self, user: str, on_body: OnBody) -> ClipwireConn:
        return await ClipwireConn.start(self.nodes.url_for(user), self.token(user), user, on_body,
                                        timeout=self.timeout)

    async def reconnect(self, old: Any, on_body: OnBody) -> ClipwireConn:
        marks = {c: s for c, s in old.marks.items() if s > 0}
        conn = await ClipwireConn.start(self.nodes.url_for(old.user), self.token(old.user), old.user, on_body,
                                       resume=marks, timeout=self.timeout)
        await conn.catch_up(self.timeout)
        return conn

    async def create_group(self, owner: Any, room: str, members: list[str]) -> str:
        others = [m for m in members if m != owner.user]
        first, rest = others[:999], others[999:]
        reply = await owner.request({"t": "group.create", "title": room[:100], "members": first}, 60)
        gid: str = reply["conv"]
        for i in range(0, len(rest), 1000):  # beyond one frame's array limit
            await owner.request({"t": "group.add", "conv": gid, "members": rest[i:i + 1000]}, 60)
        return gid

    async def join_group(self, conn: Any, gid: str) -> None:
        return None  # group.create made every member a member already
