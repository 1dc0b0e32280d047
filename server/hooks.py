"""The backend decides over HTTP: who may DM whom, and what a shared video really is.

Both hooks GET a URL made from a template, wait at most ``--hook-timeout-s``,
and keep answers for ``--hook-cache-ttl-s`` in a cache of ``--hook-cache-size``
entries per hook (a change on the backend shows within that TTL). Concurrent
asks for the same key share one request. Placeholders are filled URL-quoted.

:class:`HttpDmPolicy` (``--dm-policy-url``, with ``{sender}`` and
``{recipient}``) expects ``200 {"allow": true}`` or ``200 {"allow": false}``;
both answers are cached. It **fails closed**: a timeout, a connection error,
another status, a body that is not JSON or lacks a boolean ``allow``, all
refuse the DM (``forbidden``, as any refusal) and are not cached, so the next
message asks again. Blocks refuse a DM whatever the backend says.

:class:`HttpCardResolver` (``--card-resolver-url``, with ``{id}``) expects
``200 {url, thumb?, caption?, author?, duration_ms?}``: the backend's card for
that video, which must pass the protocol's card validation. The stored card is
the backend's, with the shared ``id`` and the sharer's start moment ``at_ms``
(dropped if it lies beyond the backend's ``duration_ms``); nothing else of the
client's card survives, so a client cannot forge a url, thumbnail or duration.
It **never passes the client's card off as the backend's**: a 404 means the
backend knows no such video, and the send or share is refused (``not_found``).
Any other failure (a timeout, an error, another status, an invalid card) is
logged and counted, never cached, and then ``--card-resolver-failure`` decides:
``refuse`` (the default) answers ``unavailable``, so the client may retry;
``unverified`` stores the client's card as the protocol validated it, marked
``verified: false`` for every reader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter
from yarl import URL

from clipwire.protocol import (
    DEFAULT_LIMITS,
    ErrorCode,
    Limits,
    RequestError,
    VideoCard,
    parse_video_card,
)

from .webhooks import ThrottledLog

if TYPE_CHECKING:
    from .config import HubConfig

log = logging.getLogger("clipwire.hooks")

MAX_ANSWER_BYTES = 64 * 1024

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class HookFailure(Exception):
    """The backend gave no usable answer (the message says why, for the log)."""


class HookNotFound(HookFailure):
    """The backend answered 404: it knows no such thing (an answer, not an outage)."""


#: What ``_lookup`` gives for a 404, told apart from ``None`` (no usable answer).
NOT_FOUND: Any = object()


class TtlCache(Generic[K, V]):
    """At most ``max_entries`` answers, each for ``ttl_s``; the least recently stored go first."""

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            del self._items[key]
            return None
        return item[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl_s <= 0 or self.max_entries <= 0:
            return
        self._items[key] = (time.monotonic() + self.ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class _HttpHook(Generic[K, V]):
    """A cached, coalesced, time-bounded GET to the backend, answered by ``_interpret``."""

    name = "hook"

    def __init__(self, url: str, *, timeout_s: float = 0.5, cache_ttl_s: float = 10.0,
                 cache_size: int = 10_000) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.cache: TtlCache[K, V] = TtlCache(cache_ttl_s, cache_size)
        self.calls = 0      # requests sent to the backend
        self.failures = 0   # of which gave no usable answer
        self._inflight: dict[K, asyncio.Task[V | None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._log = ThrottledLog(log)
        self._counter = Counter(f"clipwire_{self.name}_hook_calls",
                                f"Answers of the {self.name} hook, by outcome (ok, cached, failed)",
                                ["outcome"], registry=None)

    def register(self, registry: CollectorRegistry) -> None:
        """Export ``clipwire_<name>_hook_calls_total`` into ``registry`` (the hub's)."""
        registry.register(self._counter)

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _lookup(self, key: K, url: URL) -> V | None:
        """The answer for ``key``: cached, shared with a request in flight, or asked now."""
        cached = self.cache.get(key)
        if cached is not None:
            self._counter.labels("cached").inc()
            return cached
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._ask(key, url))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: a caller that goes away (its connection closed) does not cancel the others.
        return await asyncio.shield(task)

    def _forget(self, key: K, task: asyncio.Task[V | None]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

    async def _ask(self, key: K, url: URL) -> V | None:
        self.calls += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                value = self._interpret(key, await self._get(url))
        except HookNotFound as exc:
            self._failed(str(exc))
            return NOT_FOUND  # type: ignore[no-any-return]
        except Exception as exc:  # whatever went wrong, the caller gets its documented fallback
            self._failed(f"no answer within {self.timeout_s} s" if isinstance(exc, TimeoutError)
                         else str(exc) if isinstance(exc, HookFailure)
                         else f"{type(exc).__name__}: {exc}")
            return None
        self._counter.labels("ok").inc()
        self.cache.put(key, value)
        return value

    def _failed(self, problem: str) -> None:
        self.failures += 1
        self._counter.labels("failed").inc()
        self._log.warning("%s hook failed: %s", self.name, problem)

    async def _get(self, url: URL) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "clipwire-hooks",
                                                           "Accept": "application/json"})
        async with self._session.get(url) as response:
            if response.status == 404:
                raise HookNotFound("HTTP 404")
            if response.status != 200:
                raise HookFailure(f"HTTP {response.status}")
            body = await response.content.read(MAX_ANSWER_BYTES + 1)
        if len(body) > MAX_ANSWER_BYTES:
            raise HookFailure(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise HookFailure("answer is not JSON") from None

    def _interpret(self, key: K, answer: Any) -> V:
        raise NotImplementedError


def _fill(template: str, **values: str) -> URL:
    """The template with each value percent-encoded whole, sent as is (never re-normalized).

    Identifiers may hold any printable character: ``&to=`` must not add a
    parameter, and an id ``..`` must not climb out of the path.
    """
    for name, value in values.items():
        quoted = quote(value, safe="")
        if set(value) <= {"."}:
            quoted = value.replace(".", "%2E")
        template = template.replace("{" + name + "}", quoted)
    return URL(template, encoded=True)


class HttpDmPolicy(_HttpHook[tuple[str, str], bool]):
    """A :class:`~clipwire.server.policy.DmPolicy` asking the backend; fails closed."""

    name = "dm_policy"

    @classmethod
    def from_config(cls, config: HubConfig) -> HttpDmPolicy | None:
        """The policy ``--dm-policy-url`` asks for, or None when it is not set."""
        if not config.dm_policy_url:
            return None
        return cls(config.dm_policy_url, timeout_s=config.hook_timeout_s,
                   cache_ttl_s=config.hook_cache_ttl_s, cache_size=config.hook_cache_size)

    async def may_dm(self, sender: str, recipient: str) -> bool:
        if sender == recipient:
            return False
        url = _fill(self.url, sender=sender, recipient=recipient)
        return await self._lookup((sender, recipient), url) is True

    def _interpret(self, key: tuple[str, str], answer: Any) -> bool:
        allow = answer.get("allow") if isinstance(answer, dict) else None
        if not isinstance(allow, bool):
            raise HookFailure('answer is not {"allow": true|false}')
        return allow


class HttpCardResolver(_HttpHook[str, VideoCard]):
    """A :class:`~clipwire.server.policy.CardResolver` asking the backend; refuses unknown videos.

    ``on_failure`` is ``refuse`` or ``unverified`` (``--card-resolver-failure``).
    """

    name = "card"

    def __init__(self, url: str, *, limits: Limits = DEFAULT_LIMITS, on_failure: str = "refuse",
                 **options: Any) -> None:
        super().__init__(url, **options)
        self.limits = limits
        self.on_failure = on_failure

    @classmethod
    def from_config(cls, config: HubConfig) -> HttpCardResolver | None:
        """The resolver ``--card-resolver-url`` asks for, or None when it is not set."""
        if not config.card_resolver_url:
            return None
        return cls(config.card_resolver_url, limits=config.limits,
                   on_failure=config.card_resolver_failure, timeout_s=config.hook_timeout_s,
                   cache_ttl_s=config.hook_cache_ttl_s, cache_size=config.hook_cache_size)

    async def resolve(self, card: VideoCard) -> VideoCard:
        known = await self._lookup(card.id, _fill(self.url, id=card.id))
        if known is NOT_FOUND:
            raise RequestError(ErrorCode.NOT_FOUND, f"no video '{card.id}' is known")
        if known is None:
            if self.on_failure == "unverified":
                return replace(card, verified=False)
            raise RequestError(ErrorCode.UNAVAILABLE, "the video's card could not be checked; "
                               "try again later")
        at_ms = card.at_ms
        if at_ms is not None and known.duration_ms is not None and at_ms > known.duration_ms:
            at_ms = None
        return VideoCard(known.id, known.url, known.thumb, known.caption, known.author,
                         known.duration_ms, at_ms)

    def _interpret(self, key: str, answer: Any) -> VideoCard:
        if not isinstance(answer, dict):
            raise HookFailure("answer is not a card (a JSON object)")
        fields = {k: v for k, v in answer.items() if k not in ("id", "at_ms")}
        try:
            return parse_video_card({**fields, "id": key}, self.limits, "card")
        except RequestError as exc:
            raise HookFailure(f"answer is not a valid card: {exc.message}") from None
