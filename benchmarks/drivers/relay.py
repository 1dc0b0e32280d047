"""Bare relay adapter: msgpack frames, routing only (the Python floor)."""

from __future__ import annotations

from typing import Any

from .base import CARD_TEXT, OnBody
from .msgpackconn import MsgpackConn


class RelayConn(MsgpackConn):
    @property
    def errors(self) -> int:
        return 0  # the relay answers nothing but hello and joins

    def on_frame(self, m: dict[str, Any]) -> None:
        t = m.get("t")
        if t == "msg":
            self.on_body(m["body"])
        elif not self.resolve(m):
            self.take_first(m)

    async def dm(self, to: str, body: str) -> None:
        self.write({"t": "dm", "to": to, "body": body})

    async def room(self, gid: str, body: str) -> None:
        self.write({"t": "room", "room": gid, "body": body})

    async def share(self, to: list[str], body: str) -> None:
        self.write({"t": "share", "to": to, "body": body + "|" + CARD_TEXT})

    async def join(self, room: str, timeout: float) -> None:
        reply = await self.request({"t": "join", "room": room}, timeout)
        if reply.get("t") != "ok":
            raise ConnectionError(f"join refused: {reply}")


class RelayDriver:
    name = "relay"
    resumes = False

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.url = url
        self.timeout: float = options.get("timeout", 30.0)

    async def connect(self, user: str, on_body: OnBody) -> RelayConn:
        conn = RelayConn(user, on_body)
        await conn.open(self.url, self.timeout)
        try:
            first = await conn.first_frame({"t": "hello", "user": user}, self.timeout)
            if first.get("t") != "ok":
                raise ConnectionError(f"relay refused hello: {first}")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def reconnect(self, old: Any, on_body: OnBody) -> RelayConn:
        return await self.connect(old.user, on_body)

    async def create_group(self, owner: Any, room: str, members: list[str]) -> str:
        await owner.join(room, self.timeout)
        return room

    async def join_group(self, conn: Any, gid: str) -> None:
        await conn.join(gid, self.timeout)
