"""Exactly-once, in-order delivery of messages to the application, within bounds.

The hub numbers each conversation's messages 1, 2, 3, ... For every conversation
the client tracks ``delivered`` (everything up to it went to the application's
queue, or was the client's own send) and ``want`` (the highest seq known to
exist). Messages that arrive ahead of ``delivered + 1`` wait in a small buffer;
a hole that does not fill by itself within a moment (a live message can overtake
the resume backlog) is fetched with ``history``, 100 at a time. A ``(conv, seq)``
at or below ``delivered``, or already buffered, is a repeat and is dropped.

Nothing here waits on the socket reader: the reader only files messages and
wakes a per-conversation worker. The application's queue is bounded; when it is
full a worker waits, the buffer fills, and further messages are dropped and
fetched again later (the hub keeps them), so memory stays bounded however slowly
the application reads. Other events are dropped (and counted) when the queue is
full, since the client keeps the state they describe itself. Tombstones (``unsent``)
and hidden stubs are messages like any other here, so the seqs stay gap-free; an
``unsent`` event turns a message still waiting in the buffer into its tombstone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Final

from .errors import ClientClosed, ConnectionLost, Forbidden, NotFound, RequestFailed
from .models import ClientEvent, Message

log = logging.getLogger("clipwire.client")

Fetch = Callable[[str, int, int], Awaitable[list[Message]]]


class _End:
    """Queued after the last event: iteration is over."""


END: Final = _End()


@dataclass(eq=False, slots=True)
class _ConvSync:
    delivered: int
    want: int
    # seq -> message waiting for its turn; None marks the client's own send
    # (held, so it counts as received, but never emitted as an event).
    buffer: dict[int, Message | None] = field(default_factory=dict)
    # Holes up to this seq will not arrive by themselves (gap, new conversation,
    # or dropped for lack of room): fetch them without waiting.
    urgent_until: int = 0
    worker: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def contiguous(self) -> int:
        seq = self.delivered
        while seq + 1 in self.buffer:
            seq += 1
        return seq


class Delivery:
    """Per-conversation ordering, de-duplication and hole filling, feeding one bounded queue."""

    def __init__(self, *, fetch: Fetch, is_own: Callable[[Message], bool], max_queued: int,
                 max_buffered: int, hole_grace_s: float, page: int = 100) -> None:
        self._fetch = fetch
        self._is_own = is_own
        self._max_buffered = max_buffered
        self._grace = hole_grace_s
        self.page = page
        self.queue: asyncio.Queue[ClientEvent | _End] = asyncio.Queue(max_queued)
        self._convs: dict[str, _ConvSync] = {}
        self._ended = False
        #: Events other than messages dropped because the application's queue was full.
        self.dropped_events = 0
        #: Repeats of a (conv, seq) already held, dropped.
        self.duplicates = 0

    # -- what the client tells us -------------------------------------------

    def knows(self, conv: str) -> bool:
        return conv in self._convs

    def track(self, conv: str, delivered: int, want: int, *, urgent: bool) -> None:
        """Start following ``conv``: everything up to ``delivered`` counts as delivered."""
        st = self._convs.get(conv)
        if st is None:
            st = self._convs[conv] = _ConvSync(delivered, max(want, delivered))
        self.raise_want(conv, want, urgent=urgent)

    def raise_want(self, conv: str, last_seq: int, *, urgent: bool = False) -> None:
        """The hub says ``conv`` holds messages up to ``last_seq``."""
        st = self._convs.get(conv)
        if st is None:
            return
        st.want = max(st.want, last_seq)
        if urgent:
            st.urgent_until = max(st.urgent_until, last_seq)
        if st.want > st.delivered:
            self._kick(st, conv)

    def forget(self, conv: str) -> None:
        st = self._convs.pop(conv, None)
        if st is not None and st.worker is not None:
            st.worker.cancel()

    def on_message(self, msg: Message) -> None:
        st = self._convs.get(msg.conv)
        if st is None:  # a conversation we heard of only now: start from this message
            st = self._convs[msg.conv] = _ConvSync(msg.seq - 1, msg.seq - 1)
        if msg.seq <= st.delivered or msg.seq in st.buffer:
            self.duplicates += 1
            return
        st.want = max(st.want, msg.seq)
        if st.worker is None and not st.buffer and msg.seq == st.delivered + 1:
            if self._is_own(msg):
                st.delivered = msg.seq
                return
            if not self.queue.full():
                self.queue.put_nowait(msg)
                st.delivered = msg.seq
                return
        if len(st.buffer) < self._max_buffered:
            st.buffer[msg.seq] = msg
        else:  # no room: the hub keeps it, fetch it when its turn comes
            st.urgent_until = max(st.urgent_until, msg.seq)
        self._kick(st, msg.conv)

    def on_own(self, conv: str, seq: int) -> None:
        """The client's own send was stored as ``seq``: held, but not an event."""
        st = self._convs.get(conv)
        if st is None:
            st = self._convs[conv] = _ConvSync(seq - 1, seq - 1)
        if seq <= st.delivered:
            return
        st.want = max(st.want, seq)
        if st.worker is None and not st.buffer and seq == st.delivered + 1:
            st.delivered = seq
            return
        st.buffer[seq] = None
        self._kick(st, conv)

    def on_unsent(self, conv: str, seq: int) -> None:
        """Message ``seq`` was taken back: if it still waits here, it goes out as a tombstone."""
        st = self._convs.get(conv)
        msg = st.buffer.get(seq) if st is not None else None
        if st is not None and msg is not None:
            st.buffer[seq] = replace(msg, text=None, video=None, reply=None, unsent=True,
                                     reactions=())

    def on_gap(self, conv: str, from_seq: int, to_seq: int) -> None:
        st = self._convs.get(conv)
        if st is None:
            st = self._convs[conv] = _ConvSync(from_seq - 1, from_seq - 1)
        self.raise_want(conv, to_seq, urgent=True)

    def resume_points(self) -> list[tuple[str, int, bool]]:
        """(conv, highest contiguous seq held, whether more is known to exist) for each conv."""
        out = []
        for conv, st in self._convs.items():
            seq = st.contiguous()
            out.append((conv, seq, seq < st.want))
        return out

    def emit(self, event: ClientEvent) -> bool:
        """Queue a non-message event; drop it (and count) if the queue is full."""
        if self._ended:
            return False
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped_events += 1
            log.warning("event queue full: dropped a %s event", type(event).__name__)
            return False
        return True

    def end(self) -> None:
        """No more events: iteration ends once the queue is drained."""
        self._ended = True
        if not self.queue.full():
            self.queue.put_nowait(END)

    @property
    def ended(self) -> bool:
        return self._ended

    async def close(self) -> None:
        workers = [st.worker for st in self._convs.values() if st.worker is not None]
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        self._convs.clear()

    # -- the per-conversation worker ----------------------------------------

    def _kick(self, st: _ConvSync, conv: str) -> None:
        if self._ended:
            return
        if st.worker is None:
            st.worker = asyncio.get_running_loop().create_task(self._run(conv, st),
                                                               name=f"clipwire-sync-{conv}")
        else:
            st.wake.set()

    async def _run(self, conv: str, st: _ConvSync) -> None:
        failures = 0
        try:
            while st.delivered < st.want and self._convs.get(conv) is st:
                nxt = st.delivered + 1
                if nxt in st.buffer:
                    msg = st.buffer.pop(nxt)
                    # Advance first: a repeat arriving while we wait for room is then dropped.
                    st.delivered = nxt
                    if msg is not None and not self._is_own(msg):
                        await self.queue.put(msg)
                    continue
                if nxt > st.urgent_until and await self._arrives(st, nxt):
                    continue
                first, last = nxt, min(st.want, nxt + self.page - 1)
                ahead = [seq for seq in st.buffer if seq > nxt]
                if ahead:
                    last = min(last, min(ahead) - 1)
                try:
                    page = await self._fetch(conv, first, last)
                except (Forbidden, NotFound):
                    log.info("%s: no longer readable; stop following it", conv)
                    self._convs.pop(conv, None)
                    return
                except ClientClosed:
                    return
                except ConnectionLost:  # the reconnect backs off already; ask again when back
                    continue
                except RequestFailed as exc:
                    failures += 1
                    log.warning("%s: filling %d..%d failed (%s); retrying", conv, first, last, exc)
                    await asyncio.sleep(min(5.0, 0.2 * 2 ** failures))
                    continue
                except Exception as exc:  # timeouts, connection trouble: wait and retry
                    failures += 1
                    log.info("%s: filling %d..%d failed (%r); retrying", conv, first, last, exc)
                    await asyncio.sleep(min(5.0, 0.2 * 2 ** failures))
                    continue
                failures = 0
                for msg in page:
                    if msg.seq > st.delivered and msg.seq not in st.buffer:
                        st.buffer[msg.seq] = msg
                if nxt not in st.buffer:
                    log.warning("%s: message %d is not in history; skipping it", conv, nxt)
                    st.delivered = nxt
            # Buffered repeats at or below delivered are of no further use.
            for seq in [s for s in st.buffer if s <= st.delivered]:
                del st.buffer[seq]
        finally:
            st.worker = None
            # Something may have been filed after the loop's last check.
            if self._convs.get(conv) is st and st.want > st.delivered and not self._ended:
                asyncio.get_running_loop().call_soon(self._kick_later, conv, st)

    def _kick_later(self, conv: str, st: _ConvSync) -> None:
        if self._convs.get(conv) is st and st.worker is None and st.want > st.delivered:
            self._kick(st, conv)

    async def _arrives(self, st: _ConvSync, seq: int) -> bool:
        """Wait up to the grace period for ``seq`` to arrive by itself."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace
        while seq not in st.buffer and seq > st.urgent_until:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            st.wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await st.wake.wait()
            except TimeoutError:
                return seq in st.buffer
        return seq in st.buffer
