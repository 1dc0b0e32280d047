"""One load-generator process: its share of the clients, its own uvloop, its own histograms.

The coordinator sends commands over a pipe; each runs as a task, so a running
send can be watched with ``stats`` calls. Sends are open-loop: a pacer
schedules them by the clock and never waits for a reply, so a slow system shows
up as latency and loss instead of silently lowering the offered rate. Each body
carries the step and ``time.monotonic_ns()`` at sending (one clock for every
process on Linux), and the receiving process records send-to-delivery latency.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from hdrh.histogram import HdrHistogram

from . import hist
from .drivers import Conn, Driver, make_driver
from .procinfo import pin_self

PAD = "benchmark message with a modest body"
LATE_S = 1.0  # a pacer that cannot keep up stops this long after the step's end


class StepStats:
    __slots__ = ("delivered", "hist", "last_ns")

    def __init__(self) -> None:
        self.delivered = 0
        self.last_ns = 0
        self.hist: HdrHistogram = hist.new()


def worker_main(pipe: Connection, index: int, cpus: list[int] | None) -> None:
    """Process entry point (spawned): pin, then serve commands on uvloop until told to exit."""
    pin_self(cpus)
    logging.basicConfig(level=logging.ERROR)
    import uvloop

    uvloop.run(Worker(pipe, index).serve())


class Worker:
    def __init__(self, pipe: Connection, index: int) -> None:
        self.pipe = pipe
        self.index = index
        self.driver: Driver | None = None
        self.conns: dict[str, Conn] = {}
        self.dropped: dict[str, Conn] = {}
        self.steps: dict[int, StepStats] = {}
        self.peers: dict[str, list[str]] = {}
        self.everyone: list[str] = []
        self.sending = 0
        self.hook: Callable[[str], None] | None = None
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- plumbing -----------------------------------------------------------

    async def serve(self) -> None:
        # A thread does the blocking pipe reads: an event-loop reader would make the pipe
        # non-blocking, and a large command would then arrive in pieces.
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read_pipe, args=(loop,), daemon=True, name="commands").start()
        try:
            await self._stop.wait()
        finally:
            await self._close_all()

    def _read_pipe(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                command = self.pipe.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(self._stop.set)
                return
            loop.call_soon_threadsafe(self._start, *command)
            if command[1] == "exit":
                return

    def _start(self, rid: int, op: str, kwargs: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(rid, op, kwargs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, rid: int, op: str, kwargs: dict[str, Any]) -> None:
        try:
            reply = (rid, True, await getattr(self, "op_" + op)(**kwargs))
        except Exception:
            reply = (rid, False, f"worker {self.index}: {traceback.format_exc()}")
        try:
            self.pipe.send(reply)
        except (BrokenPipeError, OSError):
            self._stop.set()

    def on_body(self, body: str) -> None:
        """Every delivered message, from every adapter: record its latency under its step."""
        now = time.monotonic_ns()
        if self.hook is not None:
            self.hook(body)
            return
        try:
            step_text, stamp, _ = body.split("|", 2)
            step = int(step_text)
            sent_ns = int(stamp)
        except ValueError:
            return
        st = self.steps.get(step)
        if st is None:
            st = self.steps[step] = StepStats()
        st.delivered += 1
        st.last_ns = now
        hist.record_ns(st.hist, now - sent_ns)

    def _driver(self) -> Driver:
        if self.driver is None:
            raise RuntimeError("no system selected (op 'use' first)")
        return self.driver

    async def _close_all(self) -> None:
        conns = [*self.conns.values(), *self.dropped.values()]
        self.conns, self.dropped = {}, {}
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)

    # -- commands -------------------------------------------------------------

    async def op_use(self, system: str, url: str, options: dict[str, Any]) -> None:
        await self._close_all()
        self.driver = make_driver(system, url, options)
        self.steps.clear()
        self.peers, self.everyone = {}, []

    async def op_exit(self) -> None:
        self._stop.set()

    async def op_close_all(self) -> None:
        await self._close_all()

    async def op_connect(self, users: list[str], concurrency: int) -> dict[str, Any]:
        """Connect and authenticate ``users``, at most ``concurrency`` handshakes at a time."""
        driver = self._driver()
        sem = asyncio.Semaphore(max(1, concurrency))
        h = hist.new()
        failed: list[str] = []
        start = time.monotonic_ns()

        async def one(user: str) -> None:
            async with sem:
                t = time.monotonic_ns()
                try:
                    conn = await driver.connect(user, self.on_body)
                except Exception as exc:
                    failed.append(f"{user}: {exc!r}")
                    return
                hist.record_ns(h, time.monotonic_ns() - t)
                self.conns[user] = conn

        await asyncio.gather(*(one(u) for u in users))
        return {"connected": len(users) - len(failed), "failed": len(failed),
                "first_error": failed[0] if failed else None, "hist": hist.encode(h),
                "start_ns": start, "end_ns": time.monotonic_ns()}

    async def op_set_peers(self, peers: dict[str, list[str]], everyone: list[str]) -> None:
        self.peers, self.everyone = peers, everyone

    async def op_create_group(self, owner: str, room: str, members: list[str]) -> str:
        return await self._driver().create_group(self.conns[owner], room, members)

    async def op_join(self, gid: str, skip: str | None, concurrency: int = 100) -> int:
        driver = self._driver()
        sem = asyncio.Semaphore(concurrency)

        async def one(conn: Conn) -> None:
            async with sem:
                await driver.join_group(conn, gid)

        members = [c for u, c in self.conns.items() if u != skip]
        await asyncio.gather(*(one(c) for c in members))
        return len(members)

    async def op_send(self, step: int, kind: str, rate: float, seconds: float,
                      gid: str | None = None, sharer: str | None = None, pool: list[str] | None = None,
                      targets: int = 0, chunks: list[list[str]] | None = None,
                      count: int | None = None) -> dict[str, Any]:
        """Send at ``rate`` per second for ``seconds`` (open loop); see the module docstring."""
        self.steps.setdefault(step, StepStats())
        conns = [c for c in self.conns.values() if not c.closed]
        rng = random.Random()
        emit: Callable[[str], Awaitable[None]]
        planned = int(rate * seconds) if count is None else count
        if not conns or planned <= 0:
            return self._sent(0, 0, hist.new(), 0, None, time.monotonic_ns())
        if kind == "dm":
            peers, everyone = self.peers, self.everyone

            def emit(body: str) -> Awaitable[None]:
                conn = rng.choice(conns)
                mine = peers.get(conn.user)
                to = rng.choice(mine) if mine else conn.user
                while to == conn.user:
                    to = rng.choice(everyone)
                return conn.dm(to, body)
        elif kind == "dm_each":  # warm-up: every local user writes once to each of its peers
            pairs: Iterator[tuple[Conn, str]] = iter(
                [(c, p) for c in conns for p in self.peers.get(c.user, ())])
            planned = min(planned, sum(len(self.peers.get(c.user, ())) for c in conns))

            def emit(body: str) -> Awaitable[None]:
                conn, to = next(pairs)
                return conn.dm(to, body)
        elif kind == "room":
            assert gid is not None

            def emit(body: str) -> Awaitable[None]:
                return rng.choice(conns).room(gid, body)
        elif kind == "share":
            assert sharer is not None and pool
            conn = self.conns[sharer]
            k = min(targets, len(pool))

            def emit(body: str) -> Awaitable[None]:
                return conn.share(rng.sample(pool, k), body)
        elif kind == "share_each":  # warm-up: the sharer reaches every pool user once
            assert sharer is not None and chunks
            conn = self.conns[sharer]
            batches = iter(chunks)
            planned = min(planned, len(chunks))

            def emit(body: str) -> Awaitable[None]:
                return conn.share(next(batches), body)
        else:
            raise ValueError(f"unknown send kind {kind!r}")
        return await self._pace(step, rate, seconds, planned, emit)

    async def _pace(self, step: int, rate: float, seconds: float, planned: int,
                    emit: Callable[[str], Awaitable[None]]) -> dict[str, Any]:
        lag = hist.new()
        interval = 1e9 / rate
        t0 = time.monotonic_ns()
        hard_end = t0 + int((seconds + LATE_S) * 1e9)
        sent = errors = 0
        first_error: str | None = None
        prefix = f"{step}|"
        suffix = "|" + PAD
        monotonic_ns = time.monotonic_ns
        self.sending = 0
        while sent < planned:
            now = monotonic_ns()
            if now > hard_end:
                break
            due = min(planned, int((now - t0) / interval) + 1)
            while sent < due:
                stamp = monotonic_ns()
                hist.record_ns(lag, stamp - t0 - int(sent * interval))
                try:
                    await emit(f"{prefix}{stamp}{suffix}")
                except Exception as exc:
                    errors += 1
                    first_error = first_error or repr(exc)
                sent += 1
                self.sending = sent
            if sent >= planned:
                break
            # uvloop's timers tick in milliseconds: a shorter sleep would spin, so sleep at
            # least 1 ms and let the next wake-up send everything that fell due meanwhile.
            wait = (t0 + sent * interval - monotonic_ns()) / 1e9
            await asyncio.sleep(max(wait, 0.001) if wait > 0 else 0)
        return self._sent(sent, planned, lag, errors, first_error, t0)

    @staticmethod
    def _sent(sent: int, planned: int, lag: HdrHistogram, errors: int, first_error: str | None,
              t0: int) -> dict[str, Any]:
        return {"sent": sent, "planned": planned, "lag": hist.encode(lag), "send_errors": errors,
                "first_error": first_error, "start_ns": t0, "end_ns": time.monotonic_ns()}

    async def op_stats(self, step: int, final: bool = False) -> dict[str, Any]:
        st = self.steps.get(step) or StepStats()
        out: dict[str, Any] = {"delivered": st.delivered, "last_ns": st.last_ns, "cpu_s": time.process_time(),
                               "sending": self.sending, "now_ns": time.monotonic_ns()}
        if final:
            conns = list(self.conns.values())
            out["hist"] = hist.encode(st.hist)
            out["errors"] = sum(c.errors for c in conns)
            out["closed"] = sum(1 for c in conns if c.closed)
        return out

    async def op_pingpong(self, a: str, b: str, count: int, warmup: int, seconds: float) -> dict[str, Any]:
        """Unloaded ping-pong between two local clients: each delivery triggers the reply."""
        ca, cb = self.conns[a], self.conns[b]
        h = hist.new()
        seen = 0
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()

        def bounce(body: str) -> None:
            nonlocal seen
            now = time.monotonic_ns()
            _, stamp, receiver = body.split("|", 2)
            seen += 1
            if seen > warmup:
                hist.record_ns(h, now - int(stamp))
            if seen >= warmup + count:
                done.set()
                return
            src, dst = (ca, b) if receiver == a else (cb, a)
            task = loop.create_task(src.dm(dst, f"-1|{time.monotonic_ns()}|{dst}"))
            pending.add(task)
            task.add_done_callback(pending.discard)

        self.hook = bounce
        try:
            await ca.dm(b, f"-1|{time.monotonic_ns()}|{b}")
            await asyncio.wait_for(done.wait(), seconds)
            timed_out = False
        except TimeoutError:
            timed_out = True
        finally:
            self.hook = None
        return {"hist": hist.encode(h), "samples": h.get_total_count(), "timed_out": timed_out}

    async def op_feed(self, feeder: str, users: list[str], count: int, window: int) -> dict[str, Any]:
        """Store ``count`` DMs from ``feeder`` to each of ``users``, each acknowledged (resuming systems)."""
        conn: Any = self.conns[feeder]
        sem = asyncio.Semaphore(window)
        t0 = time.monotonic_ns()

        async def one(user: str, i: int) -> None:
            async with sem:
                await conn.send_acked(user, f"0|{time.monotonic_ns()}|feed {i}")

        await asyncio.gather(*(one(u, i) for i in range(count) for u in users))
        return {"stored": count * len(users), "seconds": (time.monotonic_ns() - t0) / 1e9}

    async def op_drop(self, keep: list[str]) -> int:
        """Disconnect every local client but ``keep``, all at once (they remember their state)."""
        gone = {u: c for u, c in self.conns.items() if u not in keep}
        await asyncio.gather(*(c.close() for c in gone.values()), return_exceptions=True)
        for u in gone:
            del self.conns[u]
        self.dropped.update(gone)
        return len(gone)

    async def op_reconnect(self, at_ns: int, limit_s: float) -> dict[str, Any]:
        """At ``at_ns`` reconnect every dropped client at once; each is back when caught up."""
        driver = self._driver()
        await asyncio.sleep(max(0.0, (at_ns - time.monotonic_ns()) / 1e9))
        h = hist.new()
        failed: list[str] = []
        retries = 0
        last = 0
        deadline = at_ns + int(limit_s * 1e9)

        async def one(user: str, old: Conn) -> None:
            nonlocal retries, last
            while True:
                try:
                    conn = await driver.reconnect(old, self.on_body)
                    break
                except Exception as exc:
                    if time.monotonic_ns() > deadline:
                        failed.append(f"{user}: {exc!r}")
                        return
                    retries += 1
                    await asyncio.sleep(0.05 + random.random() * 0.2)
            now = time.monotonic_ns()
            hist.record_ns(h, now - at_ns)
            last = max(last, now)
            self.conns[user] = conn

        dropped, self.dropped = self.dropped, {}
        await asyncio.gather(*(one(u, c) for u, c in dropped.items()))
        received = sum(getattr(self.conns[u], "received", 0) for u in dropped if u in self.conns)
        return {"back": len(dropped) - len(failed), "failed": len(failed),
                "first_error": failed[0] if failed else None, "hist": hist.encode(h),
                "last_ns": last, "retries": retries, "received": received}
