"""The in-process broker: the default for one node, and a bus for tests of many.

Brokers made with the same :class:`MemoryBus` see each other's publishes, as
hubs sharing a Redis would; a broker with a bus of its own reaches no one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from .base import OnMessage, OnReset


class MemoryBus:
    """Channel name to the brokers subscribed to it."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[MemoryBroker]] = {}


class MemoryBroker:
    def __init__(self, bus: MemoryBus | None = None) -> None:
        self._bus = bus or MemoryBus()
        self._channels: set[str] = set()
        self._on_message: OnMessage | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, on_message: OnMessage, on_reset: OnReset) -> None:
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()

    def publish(self, channel: str, data: bytes) -> None:
        for broker in self._bus.subscribers.get(channel, ()):
            # Delivered on a later turn of the loop, as a network broker would.
            if broker._loop is not None:
                broker._loop.call_soon(broker._arrive, channel, data)

    def _arrive(self, channel: str, data: bytes) -> None:
        if self._on_message is not None and channel in self._channels:
            self._on_message(channel, data)

    async def subscribe(self, channels: Iterable[str]) -> None:
        for channel in channels:
            self._channels.add(channel)
            self._bus.subscribers.setdefault(channel, set()).add(self)

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        for channel in channels:
            self._channels.discard(channel)
            subscribers = self._bus.subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(self)
                if not subscribers:
                    del self._bus.subscribers[channel]

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        await self.unsubscribe(list(self._channels))
        self._on_message = None
