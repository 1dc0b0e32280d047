"""The ``Broker`` interface: bytes published to channels, delivered to subscribers.

A broker only crosses nodes (phoenix_pubsub's adapter rule): a hub delivers to
its own sockets itself and publishes once for the others. Delivery is
at-most-once; when a broker loses its connection and comes back it calls
``on_reset``, so the hub can tell its clients what they may have missed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

OnMessage = Callable[[str, bytes], None]
OnReset = Callable[[], None]


class BrokerUnavailable(Exception):
    """The broker cannot be reached at start; the message says where it was looked for."""


class Broker(Protocol):
    async def start(self, on_message: OnMessage, on_reset: OnReset) -> None:
        """Connect; from now on ``on_message(channel, data)`` is called for each arrival."""
        ...

    def publish(self, channel: str, data: bytes) -> None:
        """Queue ``data`` for ``channel`` without waiting (the broker batches sends)."""
        ...

    async def subscribe(self, channels: Iterable[str]) -> None: ...

    async def unsubscribe(self, channels: Iterable[str]) -> None: ...

    async def ping(self) -> None:
        """Raise if the broker cannot be reached now."""
        ...

    async def close(self) -> None: ...
