"""What the two msgpack systems (Clipwire, the relay) share: a FastWS connection whose
frames are msgpack maps, with requests matched to replies by ``id``."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import msgpack

from .base import OnBody
from .fastws import FastWS

packb = msgpack.Packer().pack
unpackb = msgpack.unpackb


class MsgpackConn:
    subprotocols: tuple[str, ...] = ()

    def __init__(self, user: str, on_body: OnBody) -> None:
        self.user = user
        self.on_body = on_body
        self.ws: FastWS | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._first: asyncio.Future[dict[str, Any]] | None = None

    async def open(self, url: str, timeout: float) -> None:
        ws = await FastWS.connect(url, self._on_message, self.subprotocols, timeout, bind=self._bind)
        ws.done.add_done_callback(self._lost)

    def _bind(self, ws: FastWS) -> None:
        self.ws = ws

    def _on_message(self, data: bytes, text: bool) -> None:
        self.on_frame(unpackb(data))

    def on_frame(self, m: dict[str, Any]) -> None:
        raise NotImplementedError

    def _lost(self, _: object) -> None:
        for future in [*self._pending.values(), self._first]:
            if future is not None and not future.done():
                future.set_exception(ConnectionError("connection closed"))

    @property
    def closed(self) -> bool:
        return self.ws is None or self.ws.closed

    def write(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        self.ws.send(packb(frame))

    def resolve(self, m: dict[str, Any]) -> bool:
        """Hand a reply to the request waiting for it; False if nobody waits for this id."""
        future = self._pending.pop(m.get("id"), None)  # type: ignore[arg-type]
        if future is None:
            return False
        if not future.done():
            future.set_result(m)
        return True

    async def request(self, frame: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            self.write({**frame, "id": rid})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(rid, None)

    async def first_frame(self, frame: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``frame`` and wait for the next frame that is not a matched reply (the relay's hello)."""
        self._first = asyncio.get_running_loop().create_future()
        self.write(frame)
        return await asyncio.wait_for(self._first, timeout)

    def take_first(self, m: dict[str, Any]) -> bool:
        first = self._first
        if first is not None and not first.done():
            first.set_result(m)
            return True
        return False

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
