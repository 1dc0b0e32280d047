"""Helpers for the SDK tests: reading typed events with timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from faultproxy import FaultProxy

from clipwire.client import Client, ClientEvent, Message
from clipwire.server import ClipwireServer

HubFactory = Callable[..., Awaitable[ClipwireServer]]
SdkFactory = Callable[..., Awaitable[Client]]
ProxyFactory = Callable[[int], Awaitable[FaultProxy]]

WAIT_S = 5.0
E = TypeVar("E")


async def next_event(client: Client, kind: type[E], timeout: float = WAIT_S,
                     where: Callable[[E], bool] = lambda _: True) -> E:
    """The next event of type ``kind`` for which ``where`` holds; others before it are skipped."""
    async with asyncio.timeout(timeout):
        async for event in client:
            if isinstance(event, kind) and where(event):
                return event
    raise AssertionError(f"iteration ended before a {kind.__name__}")


async def messages(client: Client, count: int, timeout: float = WAIT_S) -> list[Message]:
    """The next ``count`` messages (other events are skipped)."""
    return [await next_event(client, Message, timeout) for _ in range(count)]


async def quiet(client: Client, wait_s: float = 0.4) -> list[ClientEvent]:
    """Everything that arrives within ``wait_s``."""
    seen: list[ClientEvent] = []
    try:
        async with asyncio.timeout(wait_s):
            async for event in client:
                seen.append(event)
    except TimeoutError:
        pass
    return seen


def texts(items: list[Message]) -> list[str | None]:
    return [m.text for m in items]


def seqs(items: list[Message]) -> list[int]:
    return [m.seq for m in items]
