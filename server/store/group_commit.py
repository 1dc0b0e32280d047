"""Group commit: appends that arrive while a commit is under way share the next one.

There is no timer and no per-message task: a single writer task takes whatever
has gathered (up to ``max_batch``), writes it in one transaction, and hands the
outcomes to ``on_commit`` in order. Under light load a batch is one message and
the latency is one commit; under heavy load batches grow and the cost of the
fsync is shared.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from .base import Appended, NewMessage, Store

log = logging.getLogger("clipwire.store")

Ticket = TypeVar("Ticket")


class WriterFull(Exception):
    """More appends are waiting than ``max_pending`` allows; try again shortly."""


class GroupCommitWriter(Generic[Ticket]):
    def __init__(
        self,
        store: Store,
        on_commit: Callable[[Sequence[Ticket], Sequence[Appended | None]], None],
        on_error: Callable[[Sequence[Ticket], Exception], None],
        *,
        max_pending: int = 20_000,
        max_batch: int = 1_000,
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        self._observe = observe
        self._store = store
        self._on_commit = on_commit
        self._on_error = on_error
        self._max_pending = max_pending
        self._max_batch = max_batch
        self._items: list[NewMessage] = []
        self._tickets: list[Ticket] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.committed = 0

    @property
    def pending(self) -> int:
        return len(self._items)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    def submit(self, item: NewMessage, ticket: Ticket) -> None:
        """Queue one append; ``on_commit`` reports it after its transaction."""
        if self._closing or len(self._items) >= self._max_pending:
            raise WriterFull("the store is behind; retry shortly")
        self._items.append(item)
        self._tickets.append(ticket)
        self._wakeup.set()

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            if not self._items:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            items, tickets = self._items[: self._max_batch], self._tickets[: self._max_batch]
            del self._items[: self._max_batch], self._tickets[: self._max_batch]
            started = time.perf_counter()
            try:
                results = await self._store.append_batch(items)
            except Exception as exc:
                log.error("append of %d messages failed: %s", len(items), exc)
                try:
                    self._on_error(tickets, exc)
                except Exception:  # a bug in the callback must not stop the writer
                    log.exception("group commit error callback failed")
                continue
            if self._observe is not None:
                self._observe(len(items), time.perf_counter() - started)
            self.batches += 1
            self.committed += len(items)
            try:
                self._on_commit(tickets, results)
            except Exception:
                log.exception("group commit callback failed")
