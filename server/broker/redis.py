"""The Redis broker: pub/sub between hub nodes, on redis-py's asyncio client.

The only module that imports redis. Publishes are queued and sent by one task
in pipelines, so a burst of events costs a few round trips, not one each. A
dropped connection is retried with backoff; redis-py resubscribes on
reconnect, and every reconnect after the first is reported through
``on_reset``, because what was published meanwhile is lost (pub/sub is
at-most-once) and the hub must tell its clients to catch up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .base import OnMessage, OnReset

log = logging.getLogger("clipwire.broker")


class BrokerUnavailable(Exception):
    """Redis cannot be reached at start; the message says where it was looked for."""


class RedisBroker:
    def __init__(self, url: str, *, max_queued: int = 100_000, batch: int = 512) -> None:
        self.url = url
        self._max_queued = max_queued
        self._batch = batch
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._channels: set[str] = set()
        self._outbox: list[tuple[str, bytes]] = []
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._on_message: OnMessage | None = None
        self._on_reset: OnReset | None = None
        self._closing = False
        self._connects = 0
        self.dropped = 0
        self.resets = 0

    @property
    def client(self) -> aioredis.Redis:
        """The node's connection pool, also used for presence keys."""
        if self._client is None:
            raise BrokerUnavailable("broker not started")
        return self._client

    async def start(self, on_message: OnMessage, on_reset: OnReset) -> None:
        self._on_message, self._on_reset = on_message, on_reset
        self._client = aioredis.from_url(self.url, health_check_interval=5)
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            await self._client.aclose()
            raise BrokerUnavailable(f"cannot reach Redis at {self.url}: {exc}") from exc
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read(), name="broker-read"),
                       loop.create_task(self._write(), name="broker-write")]

    def publish(self, channel: str, data: bytes) -> None:
        if len(self._outbox) >= self._max_queued:
            self.dropped += 1
            return
        self._outbox.append((channel, data))
        self._wakeup.set()

    async def subscribe(self, channels: Iterable[str]) -> None:
        new = [c for c in channels if c not in self._channels]
        if not new:
            return
        self._channels.update(new)
        await self._guarded(self._pubsub.subscribe(*new))
        self._watch_connects()

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        gone = [c for c in channels if c in self._channels]
        if not gone:
            return
        self._channels.difference_update(gone)
        await self._guarded(self._pubsub.unsubscribe(*gone))

    async def _guarded(self, call: Any) -> None:
        # While Redis is away the (un)subscribe is remembered in _channels and
        # redis-py replays the subscriptions on reconnect.
        try:
            await call
        except (RedisError, OSError) as exc:
            log.warning("broker: Redis unavailable (%s); will resubscribe on reconnect", exc)

    def _watch_connects(self) -> None:
        conn = self._pubsub.connection
        if conn is not None and self._connects == 0:
            self._connects = 1
            conn.register_connect_callback(self._connected)

    async def _connected(self, connection: Any) -> None:
        self._connects += 1
        self.resets += 1
        log.warning("broker: reconnected to Redis; events published meanwhile were lost")
        if self._on_reset is not None:
            self._on_reset()

    async def _read(self) -> None:
        backoff = 0.1
        while not self._closing:
            if not self._channels:
                await asyncio.sleep(0.05)
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.1
            except (RedisError, OSError) as exc:
                log.warning("broker: Redis connection lost (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if message is not None and message["type"] == "message" and self._on_message:
                channel = message["channel"]
                try:
                    self._on_message(channel.decode() if isinstance(channel, bytes) else channel,
                                     message["data"])
                except Exception:
                    log.exception("broker: handling a message on %s failed", channel)

    async def _write(self) -> None:
        while True:
            if not self._outbox:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch, self._outbox = self._outbox[: self._batch], self._outbox[self._batch :]
            pipe = self.client.pipeline(transaction=False)
            for channel, data in batch:
                pipe.publish(channel, data)
            try:
                await pipe.execute()
            except (RedisError, OSError) as exc:
                self.dropped += len(batch)
                log.warning("broker: %d events not published (%s)", len(batch), exc)
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        self._closing = True
        self._wakeup.set()
        for task in self._tasks:
            if task.get_name() == "broker-write":
                try:
                    await asyncio.wait_for(task, 2)
                except (TimeoutError, asyncio.CancelledError):
                    pass
            else:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
