"""The Redis broker: pub/sub between hub nodes, on redis-py's asyncio client.

The only module that imports redis: presence across nodes (``RedisPresence``)
and the rate-limit counters the nodes share (``RedisUsage``) are here too.
Publishes are queued and written by one task, a batch per write, on a
connection whose replies are switched off, so a burst of events costs one
system call and no round trip. A dropped connection is retried with backoff;
redis-py resubscribes on reconnect, and every reconnect after the
first is reported through ``on_reset``, because what was published meanwhile
is lost (pub/sub is at-most-once) and the hub must tell its clients to catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .base import BrokerUnavailable, OnMessage, OnReset

log = logging.getLogger("clipwire.broker")


POOL_SIZE = 32  # connections per node for publishes and presence (pub/sub has its own)
POOL_WAIT_S = 10.0
CONNECT_TIMEOUT_S = 5.0  # to connect and get the first answer at start-up
KEEPALIVE_S = 5.0  # ping the pub/sub connection this often; 3 silent periods drop it


class RedisBroker:
    def __init__(self, url: str, *, max_queued: int = 100_000, batch: int = 512,
                 observe_publish: Any = None, keepalive_s: float = KEEPALIVE_S) -> None:
        self.url = url
        self.observe_publish = observe_publish  # called with seconds per batch written
        self._max_queued = max_queued
        self._batch = batch
        self._keepalive_s = keepalive_s
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._publisher: Any = None  # a redis.asyncio Connection with replies switched off
        self._publisher_watch: asyncio.Task[None] | None = None
        self._publisher_connects = 0
        self._channels: set[str] = set()
        self._outbox: list[tuple[str, bytes]] = []
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._on_message: OnMessage | None = None
        self._on_reset: OnReset | None = None
        self._closing = False
        self._connects = 0
        self._heard = time.monotonic()  # when the pub/sub connection last delivered anything
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
        # Without a retry, every pooled connection fails once after Redis restarts (its
        # socket is dead): a failed presence update. A retry reconnects; commands repeated
        # after a lost reply are idempotent (SADD, SREM).
        # A bounded pool that makes callers wait for a free connection: hundreds of
        # clients leaving at once must queue their presence updates, not fail them.
        # RESP2: under RESP3, redis-py hands every pub/sub message to a push handler
        # that formats the whole message into a debug line, used or not.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=POOL_SIZE, timeout=POOL_WAIT_S, health_check_interval=5,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError], protocol=2,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
        )
        # The URL's options win over the arguments above; the reader needs bytes and RESP2.
        pool.connection_kwargs.update(decode_responses=False, protocol=2)
        self._client = aioredis.Redis.from_pool(pool)  # owns the pool: closed with the client
        try:
            # Bounded: a port that takes the connection but never answers (a wrong
            # port, a TLS endpoint, a stuck proxy) must fail the start, not hang it.
            await asyncio.wait_for(self._client.ping(), CONNECT_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._client.aclose()
            self._client = None  # closing the hub must not try this Redis again
            why = exc or f"no answer within {CONNECT_TIMEOUT_S:.0f} s"
            raise BrokerUnavailable(f"cannot reach Redis at {self.url}: {why}") from exc
        self._publisher = pool.connection_class(**{**pool.connection_kwargs,
                                                   "health_check_interval": 0})
        self._publisher.register_connect_callback(self._replies_off)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read(), name="broker-read"),
                       loop.create_task(self._write(), name="broker-write"),
                       loop.create_task(self._keepalive(), name="broker-keepalive")]

    async def ping(self) -> None:
        await self.client.ping()

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
        """Hand every message to ``on_message``; everything else to redis-py's bookkeeping.

        Messages are read straight off the pub/sub connection: a blocking read
        with no timeout to arm and cancel each time (``_keepalive`` notices a
        connection gone quiet) and no dict built per message. After an error
        one read goes through ``PubSub.parse_response``, which reconnects and
        resubscribes. Together about a third of ``get_message(timeout=...)``.
        """
        pubsub, backoff, fast = self._pubsub, 0.1, True
        while not self._closing:
            # The first subscribe opens the pub/sub connection: until it exists redis-py
            # raises RuntimeError, which would end this task for good.
            conn = pubsub.connection
            if not self._channels or conn is None:
                await asyncio.sleep(0.05)
                continue
            try:
                if fast:
                    response = await conn.read_response(timeout=math.inf, disconnect_on_error=False,
                                                        push_request=True)
                else:
                    response = await pubsub.parse_response(block=True)
                backoff, fast = 0.1, True
            except (RedisError, OSError) as exc:
                log.warning("broker: Redis connection lost (%s); retrying in %.1f s", exc, backoff)
                fast = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            except Exception:  # never stop reading: a dead reader silently cuts the node off
                log.exception("broker: reading from Redis failed; retrying in %.1f s", backoff)
                fast = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            self._heard = time.monotonic()
            if response is None:
                continue
            if response[0] == b"message":
                try:
                    self._on_message(response[1].decode(), response[2])  # type: ignore[misc]
                except Exception:
                    log.exception("broker: handling a message on %r failed", response[1])
            else:  # (un)subscribe confirmations, pongs: redis-py tracks its subscriptions
                await pubsub.handle_message(response, ignore_subscribe_messages=True)

    async def _keepalive(self) -> None:
        """Ping the pub/sub connection; drop it if nothing came back, so that it reconnects.

        The read blocks without a timeout, and a connection cut off without a
        reset (a partition, a dead host) would otherwise stay silent for good.
        """
        while not self._closing:
            await asyncio.sleep(self._keepalive_s)
            conn = self._pubsub.connection
            if conn is None or not self._channels:
                self._heard = time.monotonic()  # nothing to hear yet
                continue
            if not conn.is_connected:
                continue  # the reader is reconnecting: do not race it
            if time.monotonic() - self._heard > 3 * self._keepalive_s:
                log.warning("broker: nothing from Redis for %.0f s; reconnecting",
                            time.monotonic() - self._heard)
                self._heard = time.monotonic()
                with contextlib.suppress(Exception):
                    await conn.disconnect()
                continue
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.ping()

    async def _replies_off(self, connection: Any) -> None:
        await connection.send_command("CLIENT", "REPLY", "OFF", check_health=False)
        if self._publisher_watch is not None:
            self._publisher_watch.cancel()
        self._publisher_connects += 1
        self._publisher_watch = asyncio.get_running_loop().create_task(
            self._watch_publisher(connection, self._publisher_connects),
            name="broker-publisher-watch")

    async def _watch_publisher(self, conn: Any, connect: int) -> None:
        """Read the publisher's connection, on which Redis says nothing, to notice it closing.

        A connection closed by the server (a restart, a proxy's idle timeout,
        ``CLIENT KILL``) is only half-closed for us: writes into it would vanish
        without an error. The end of the stream shows at once here, and the next
        batch reconnects. A reply means replies are not off (a proxy that does not
        know ``CLIENT REPLY``): it is drained and said once.
        """
        told = False
        while True:
            try:
                reply = await conn.read_response(timeout=math.inf, disconnect_on_error=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                break
            if not told:
                told = True
                log.error("broker: Redis answered a publish (%r); CLIENT REPLY OFF is not in "
                          "effect, so every publish now costs a reply read here", reply)
        if not self._closing and connect == self._publisher_connects:  # not reconnected since
            log.warning("broker: the publishing connection closed; the next batch reconnects")
            with contextlib.suppress(Exception):
                await conn.disconnect()

    async def _write(self) -> None:
        """Send what is queued, a batch per write, on a connection Redis does not answer.

        ``CLIENT REPLY OFF``: a PUBLISH reply only counts its receivers, and reading
        it back cost more than the publish itself (a pooled pipeline per batch was
        about 300 us of CPU here, the bare write under 60). Nothing waits for a
        round trip, so batches follow each other as fast as the socket takes them.
        A write that fails drops its batch (pub/sub is at-most-once; the receivers'
        own reconnect reports the loss when Redis went away) and the next one
        reconnects; ``_watch_publisher`` notices a connection the server closed.
        """
        conn = self._publisher
        while True:
            if not self._outbox:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch, self._outbox = self._outbox[: self._batch], self._outbox[self._batch :]
            started = time.perf_counter()
            try:
                await conn.send_packed_command(
                    conn.pack_commands([("PUBLISH", channel, data) for channel, data in batch]),
                    check_health=False)
                if self.observe_publish is not None:
                    self.observe_publish(time.perf_counter() - started)
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
        if self._publisher_watch is not None:
            self._publisher_watch.cancel()
            self._tasks.append(self._publisher_watch)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._publisher is not None:
            await self._publisher.disconnect()
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class RedisPresence:
    """Presence across nodes: ``cw:p:<user>`` holds the ids of the nodes the user is on.

    Each node refreshes ``cw:alive:<node>`` (TTL ``ttl_s``) every ``ttl_s / 3``
    and lists its users in ``cw:users:<node>``. Every node sweeps the
    registered nodes each ``ttl_s / 3``; the users of a node whose key has
    expired are removed from presence by whichever node takes the sweep lock,
    and those left on no node are reported offline. So a node that dies shows
    its users offline within ``ttl_s * 4 / 3`` (20 s with the default 15 s).
    Every node also notices, at its next sweep, that a node it saw alive is gone,
    and calls ``on_gone`` (the hub then sends gaps for what that node stored but
    may never have published). A heartbeat that finds this node unregistered
    (Redis restarted empty, or this node was swept while cut off) registers its
    users again.
    """

    def __init__(self, broker: RedisBroker, *, ttl_s: float = 15.0) -> None:
        self._broker = broker
        self.ttl_s = ttl_s
        self.node = ""
        self._on_lost: Any = None
        self._on_gone: Any = None
        self._task: asyncio.Task[None] | None = None
        self._peers: set[str] = set()  # other nodes alive at the last sweep
        self._here: set[str] = set()  # users this node has registered

    async def start(self, node: str, on_lost: Any, on_gone: Any = None) -> None:
        self.node, self._on_lost, self._on_gone = node, on_lost, on_gone
        await self._heartbeat()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="presence")

    async def _heartbeat(self) -> None:
        r = self._broker.client
        pipe = r.pipeline(transaction=False)
        pipe.set(f"cw:alive:{self.node}", 1, px=int(self.ttl_s * 1000))
        pipe.sadd("cw:nodes", self.node)
        _, registered = await pipe.execute()
        if registered and self._here:
            await self._register_again()

    async def _register_again(self) -> None:
        users = sorted(self._here)
        pipe = self._broker.client.pipeline(transaction=False)
        for user in users:
            pipe.sadd(f"cw:p:{user}", self.node)
        pipe.sadd(f"cw:users:{self.node}", *users)
        await pipe.execute()
        left = [user for user in users if user not in self._here]  # left meanwhile
        if left:
            pipe = self._broker.client.pipeline(transaction=False)
            for user in left:
                pipe.srem(f"cw:p:{user}", self.node)
            pipe.srem(f"cw:users:{self.node}", *left)
            await pipe.execute()
        log.warning("presence: this node was not registered in Redis; registered %d users again",
                    len(users))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                await self._heartbeat()
                await self._sweep()
            except (RedisError, OSError) as exc:
                log.warning("presence: Redis unavailable (%s)", exc)
            except Exception:
                log.exception("presence sweep failed")

    async def _sweep(self) -> None:
        r = self._broker.client
        alive: set[str] = set()
        for raw in await r.smembers("cw:nodes"):
            node = raw.decode() if isinstance(raw, bytes) else raw
            if node == self.node:
                continue
            if await r.exists(f"cw:alive:{node}"):
                alive.add(node)
                continue
            if not await r.set(f"cw:sweep:{node}", self.node, nx=True, px=int(self.ttl_s * 2000)):
                continue  # another node is sweeping it
            users = [u.decode() if isinstance(u, bytes) else u
                     for u in await r.smembers(f"cw:users:{node}")]
            lost = []
            for user in users:
                pipe = r.pipeline(transaction=True)
                pipe.srem(f"cw:p:{user}", node)
                pipe.scard(f"cw:p:{user}")
                _, left = await pipe.execute()
                if left == 0:
                    lost.append(user)
            await r.delete(f"cw:users:{node}")
            await r.srem("cw:nodes", node)
            log.warning("presence: node %s is gone; %d users offline", node, len(lost))
            if lost and self._on_lost is not None:
                await self._on_lost(lost)
        gone, self._peers = self._peers - alive, alive
        if gone and self._on_gone is not None:
            log.warning("presence: node(s) %s gone; catching up", ", ".join(sorted(gone)))
            self._on_gone()

    async def arrive(self, user: str) -> bool:
        self._here.add(user)
        pipe = self._broker.client.pipeline(transaction=True)
        pipe.sadd(f"cw:p:{user}", self.node)
        pipe.scard(f"cw:p:{user}")
        pipe.sadd(f"cw:users:{self.node}", user)
        added, count, _ = await pipe.execute()
        return bool(added) and count == 1

    async def leave(self, user: str) -> bool:
        self._here.discard(user)
        pipe = self._broker.client.pipeline(transaction=True)
        pipe.srem(f"cw:p:{user}", self.node)
        pipe.scard(f"cw:p:{user}")
        pipe.srem(f"cw:users:{self.node}", user)
        _, count, _ = await pipe.execute()
        return int(count) == 0

    async def online(self, users: Iterable[str]) -> set[str]:
        wanted = list(users)
        if not wanted:
            return set()
        pipe = self._broker.client.pipeline(transaction=False)
        for user in wanted:
            pipe.scard(f"cw:p:{user}")
        counts = await pipe.execute()
        return {user for user, count in zip(wanted, counts, strict=True) if count}

    async def close(self) -> None:
        """Leave cleanly: this node's users are no longer online here."""
        if self._task is None:
            return  # never started (Redis did not answer at start): nothing to undo there
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        try:
            r = self._broker.client
            users = await r.smembers(f"cw:users:{self.node}")
            pipe = r.pipeline(transaction=False)
            for raw in users:
                pipe.srem(f"cw:p:{raw.decode() if isinstance(raw, bytes) else raw}", self.node)
            pipe.delete(f"cw:users:{self.node}", f"cw:alive:{self.node}")
            pipe.srem("cw:nodes", self.node)
            await pipe.execute()
        except (RedisError, OSError, BrokerUnavailable):
            pass


# KEYS: for each spend, its window's key and the window before's; ARGV: the TTL in
# ms, then each spend's count. Returns, for each spend, the window's new total and
# the total of the window before.
_ADD_SPENDS = """
local ttl, out = tonumber(ARGV[1]), {}
for i = 1, #KEYS, 2 do
  out[i] = redis.call('INCRBY', KEYS[i], ARGV[(i + 1) / 2 + 1])
  redis.call('PEXPIRE', KEYS[i], ttl)
  out[i + 1] = tonumber(redis.call('GET', KEYS[i + 1]) or 0)
end
return out
"""


class RedisUsage:
    """Rate-limit spend shared by the nodes (the limiter's logic is in ratelimit.py).

    ``cw:rate:<kind>:<window>:<user>`` counts what a user spent of one kind in one
    window on every node; it expires ``ttl_s`` after its last update. One flush is
    one script call: for each user, ``INCRBY`` of the node's spend, ``PEXPIRE``, and
    a ``GET`` of the window before, and one array comes back. As a pipeline of
    three commands a user, redis-py's reading of each reply cost a fifth of a busy
    node's CPU.
    """

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker
        self._script: Any = None

    async def add(self, spends: Sequence[tuple[str, str, int, int]],
                  ttl_s: float) -> list[tuple[int, int]]:
        if not spends:
            return []
        if self._script is None:
            self._script = self._broker.client.register_script(_ADD_SPENDS)
        keys: list[str] = []
        for user, kind, window, _ in spends:
            keys += (f"cw:rate:{kind}:{window}:{user}", f"cw:rate:{kind}:{window - 1}:{user}")
        replies = await self._script(keys=keys, args=[int(ttl_s * 1000), *(c for *_, c in spends)])
        return [(int(replies[i]), int(replies[i + 1])) for i in range(0, len(replies), 2)]
