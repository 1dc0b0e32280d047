"""Fault injection with a Jepsen-style loss checker.

Many clients exchange messages through one or several hub processes while faults
are injected; afterwards every acknowledged message is scored, per device, the way
Jepsen's queue checker scores a queue:

- **delivered**: shown to the device's application (at least once);
- **lost**: acknowledged to its sender, in a conversation of the device, never shown;
- **duplicated**: shown more than once;
- **unexpected**: shown, but never sent (or sent to a conversation the device is not in);
- **out of order**: shown at a position other than the one its acknowledgement gave
  (its ``seq`` differs from the acknowledged one, or it came after a message acknowledged
  with a higher ``seq`` in the same conversation);
- **recovered** (not a failure): shown, sent, but the sender never saw the ``ok``.

A message is identified by ``(conv, sender, cmid)``, the hub's idempotency key
(SPEC section 10). The store is scored like one more device that is a member of
every conversation (its ``history``, page by page). A run passes with 0 lost,
0 duplicated, 0 unexpected and 0 out of order everywhere, and no conflicting
acknowledgements (one key acknowledged at two ``seq``s, or two keys at one).

The clients (:class:`Device`) are plain ``websockets`` connections that keep only the
client's part of SPEC section 10: resume with the highest contiguous ``seq``, drop
repeats of ``(conv, seq)``, fill holes (a ``seq`` jump after a short grace, a ``gap``
at once, a conversation of the welcome that was not resumed) with ``history``, and
retry an unanswered send with the same ``cmid``. What a device shows its application
is its contiguous prefix, in ``seq`` order, as each message joins it.

Scenarios (each a coroutine ``run_<name>(plan, workdir, ...)`` returning a result dict):

- ``kill``: one hub (SQLite), SIGKILLed during traffic and restarted on the same port;
- ``stop``: one hub SIGSTOPped for longer than the clients' request timeout, then SIGCONT;
- ``network``: clients reach the hub through :class:`~benchmarks.faultproxy.FaultProxy`,
  which cuts random connections and has outages (refuse, black-hole, then cut);
- ``redis-restart``: two hubs on PostgreSQL and their own Redis; Redis SIGKILLed and
  started again empty;
- ``pubsub-kill``: the same two hubs; their pub/sub connections killed with
  ``CLIENT KILL TYPE pubsub``, in bursts (silent loss the hubs must detect and repair);
- ``pubsub-kill-undetected`` (``--control``): the negative control, the same on hubs
  whose reconnect callback is switched off; it passes when the checker sees loss.

Each fault comes right after a few conversations got their last message of the run
(``Run.last_words``): a fault that loses such a message cannot be papered over by a
later message revealing the hole, only by the hub (resume, ``gap``).

``tests/faults`` runs a short version of each. The long version::

    .venv/bin/python -m benchmarks.faults --minutes 10 --control
    .venv/bin/python -m benchmarks.faults --minutes 2 --scenarios kill,network

writes ``benchmarks/results/faults.json`` and prints a summary; it exits 1 when a
scenario fails. It needs ``redis-server`` on PATH and PostgreSQL at ``DATABASE_URL``
(default ``postgresql://127.0.0.1:5432/test``) for the two-node scenarios; a scenario
that cannot run is reported as failed with its reason. Everything listens on
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from clipwire.protocol import Limits, decode, encode
from clipwire.server import sign_token

from .faultproxy import FaultProxy
from .services import LocalRedis, RedisControl, pg_schema

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "faults.json"
SECRET = "fault-injection-secret-fault-injection-0123"
SCENARIOS = ("kill", "stop", "network", "redis-restart", "pubsub-kill")
CONTROL = "pubsub-kill-undetected"  # the negative control: it passes when the checker sees loss
MULTI_NODE = ("redis-restart", "pubsub-kill", CONTROL)

Key = tuple[str, str, str]  # (conv, sender, cmid): a message's identity
# What a client accepts from the hub: the hub's own frames are trusted to be sane.
_CLIENT_LIMITS = Limits(max_frame_bytes=1 << 26, max_str_len=1 << 24, max_array_len=1 << 20,
                        max_map_len=1 << 20, max_depth=32)


# -- the checker ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as a device's application was shown it (or as the store holds it)."""

    conv: str
    seq: int
    sender: str
    cmid: str

    @property
    def key(self) -> Key:
        return (self.conv, self.sender, self.cmid)


class AckLog:
    """What the senders attempted and what the hub acknowledged: the checker's truth."""

    def __init__(self) -> None:
        self.seq_of: dict[Key, int] = {}
        self.key_at: dict[tuple[str, int], Key] = {}
        self.attempted: set[Key] = set()
        self.conflicts: list[str] = []

    def attempt(self, conv: str, sender: str, cmid: str) -> None:
        self.attempted.add((conv, sender, cmid))

    def ack(self, conv: str, seq: int, sender: str, cmid: str) -> None:
        """Record an ``ok``; a repeat of the same ack is fine, a different one is a conflict."""
        key = (conv, sender, cmid)
        self.attempted.add(key)
        first = self.seq_of.setdefault(key, seq)
        if first != seq:
            self.conflicts.append(f"{key} acknowledged as seq {first} and as seq {seq}")
        holder = self.key_at.setdefault((conv, seq), key)
        if holder != key:
            self.conflicts.append(f"{conv} seq {seq} acknowledged for {holder} and for {key}")

    def in_conv(self, conv: str) -> list[tuple[int, Key]]:
        return sorted((seq, key) for (c, seq), key in self.key_at.items() if c == conv)

    def last_seq(self, conv: str) -> int:
        return max((seq for (c, seq) in self.key_at if c == conv), default=0)

    def convs(self) -> set[str]:
        return {c for c, _ in self.key_at}

    @property
    def acked(self) -> int:
        return len(self.seq_of)


@dataclass
class DeviceScore:
    device: str
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    out_of_order: int = 0
    recovered: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.out_of_order)

    def note(self, kind: str, text: str) -> None:
        shown = self.examples.setdefault(kind, [])
        if len(shown) < 5:
            shown.append(text)


FAILURES = ("lost", "duplicated", "unexpected", "out_of_order")


def score_device(label: str, deliveries: Sequence[Delivery], convs: Iterable[str],
                 acks: AckLog) -> DeviceScore:
    """Score what one device showed its application against the acknowledgements."""
    member = set(convs)
    expected = {key for conv in member for _, key in acks.in_conv(conv)}
    score = DeviceScore(label, expected=len(expected))
    counts: Counter[Key] = Counter()
    reached: dict[str, int] = {}  # conv -> highest acknowledged seq shown so far
    for d in deliveries:
        key = d.key
        counts[key] += 1
        if counts[key] > 1:
            continue
        acked_seq = acks.seq_of.get(key)
        if acked_seq is None:
            if key in acks.attempted and d.conv in member:
                score.recovered += 1
            else:
                score.unexpected += 1
                score.note("unexpected", f"{d} was never sent")
            continue
        if d.conv not in member:
            score.unexpected += 1
            score.note("unexpected", f"{d} is of a conversation the device is not in")
            continue
        if acked_seq != d.seq or acked_seq < reached.get(d.conv, 0):
            score.out_of_order += 1
            score.note("out_of_order", f"{d} (acknowledged as seq {acked_seq}) after seq "
                                       f"{reached.get(d.conv, 0)}")
        else:
            reached[d.conv] = acked_seq
    for key, n in counts.items():
        if n > 1:
            score.duplicated += 1
            score.note("duplicated", f"{key} shown {n} times")
    shown = expected & counts.keys()
    score.delivered = len(shown)
    missing = sorted(expected - shown, key=lambda k: (k[0], acks.seq_of[k]))
    score.lost = len(missing)
    for key in missing[:5]:
        score.note("lost", f"{key} (seq {acks.seq_of[key]})")
    return score


def score_run(views: Mapping[str, tuple[Sequence[Delivery], Iterable[str]]],
              acks: AckLog) -> dict[str, Any]:
    """Score every device (``views``: label -> (deliveries, its conversations))."""
    scores = [score_device(label, deliveries, convs, acks)
              for label, (deliveries, convs) in views.items()]
    totals = {name: sum(getattr(s, name) for s in scores)
              for name in ("expected", "delivered", *FAILURES, "recovered")}
    failing = [s for s in scores if not s.ok]
    return {
        "passed": not failing and not acks.conflicts,
        "acknowledged": acks.acked,
        "attempted": len(acks.attempted),
        "ack_conflicts": acks.conflicts[:10],
        "totals": totals,
        "devices": len(scores),
        "failing_devices": [asdict(s) for s in failing[:10]],
    }


def check_prefix(label: str, deliveries: Sequence[Delivery], acks: AckLog,
                 in_doubt: set[Key] | None = None) -> list[str]:
    """Problems with the rule "what a device showed is a gap-free prefix of the
    acknowledged messages of each conversation, in order": in each conversation the
    k-th message shown must carry seq k, and be the message acknowledged at seq k, or,
    if none is acknowledged there yet, one sent whose ``ok`` is still outstanding."""
    doubt = acks.attempted if in_doubt is None else in_doubt
    problems = []
    position: dict[str, int] = {}
    for d in deliveries:
        k = position[d.conv] = position.get(d.conv, 0) + 1
        if d.seq != k:
            problems.append(f"{label}: message {k} shown in {d.conv} has seq {d.seq}")
            continue
        acked = acks.key_at.get((d.conv, k))
        if acked is not None and acked != d.key:
            problems.append(f"{label}: {d.conv} seq {k} shown as {d.key}, acknowledged as {acked}")
        elif acked is None and d.key not in doubt:
            problems.append(f"{label}: {d} shown but never sent")
    return problems


# -- a device that keeps the client's part ------------------------------------------------


class ConnectionLost(Exception):
    """The device's connection ended before the reply came."""


class HelloRefused(Exception):
    """The hub answered ``hello`` with an error."""


@dataclass
class ClientTiming:
    request_timeout_s: float = 3.0
    hole_grace_s: float = 0.3  # a live message may overtake another (resume, two nodes)
    open_timeout_s: float = 3.0
    ping_interval_s: float | None = 1.0  # the client's own keepalive: a frozen hub is left
    ping_timeout_s: float | None = 2.5


class Device:
    """One device of ``user``: requests matched by id, every frame read as it comes.

    The one spec-following test client: the fault runs use it, and so do the
    multi-node tests (tests/cluster/clusterhelp.py). ``app`` is what the application
    was shown, in order: each message once, as it joins the contiguous prefix of its
    conversation (own sends included, from their ``ok``). Events other than messages
    and gaps are kept in ``events`` for a test to look at (``next_event``).
    """

    def __init__(self, user: str, label: str | None = None, secret: str = SECRET,
                 timing: ClientTiming | None = None) -> None:
        self.user = user
        self.label = label or user
        self.secret = secret
        self.timing = timing or ClientTiming()
        self.url = ""
        self.ws: ClientConnection | None = None
        self.welcome: dict[str, Any] = {}
        self.held: dict[str, dict[int, Delivery]] = {}  # every (conv, seq) once
        self.contig: dict[str, int] = {}
        self.want: dict[str, int] = {}
        self.app: list[Delivery] = []
        self.outbox: dict[str, str] = {}  # cmid -> conv: sent, no ok seen yet
        self.stats: Counter[str] = Counter()
        self.problems: list[str] = []
        self.arrivals: dict[str, list[int]] = {}  # seqs of msg events in the order they came
        self.events: list[tuple[float, dict[str, Any]]] = []  # other events, with arrival time
        self.lost = asyncio.Event()
        self.lost.set()
        self.online = asyncio.Event()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._filler: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._hole_since: dict[str, tuple[int, float]] = {}
        self._urgent: set[str] = set()
        self.closed = False

    @property
    def connected(self) -> bool:
        return self.ws is not None and not self.lost.is_set()

    def holes(self) -> dict[str, tuple[int, int]]:
        return {c: (self.contig[c], w) for c, w in self.want.items() if self.contig[c] < w}

    def holding(self, conv: str) -> dict[int, tuple[str, str]]:
        """seq -> (sender, cmid) of every message held of ``conv``."""
        return {seq: (d.sender, d.cmid) for seq, d in self.held.get(conv, {}).items()}

    # The counters by name, for tests that read one.
    repeats = property(lambda self: self.stats["repeats"])
    gaps = property(lambda self: self.stats["gaps"])
    fetched = property(lambda self: self.stats["fetched"])
    history_calls = property(lambda self: self.stats["history_calls"])
    connects = property(lambda self: self.stats["connects"])
    rate_limited = property(lambda self: self.stats["rate_limited"])
    resumed = property(lambda self: self.stats["resumed"])  # messages owed to resumes, as welcomed
    conflicts = property(lambda self: self.problems)

    # -- connection -------------------------------------------------------------------

    async def connect(self, url: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Connect and say hello, resuming every known conversation from its contiguous mark."""
        t = self.timing
        open_timeout = t.open_timeout_s if timeout is None else timeout
        ws = await connect(url, subprotocols=[Subprotocol("clipwire.v1")], compression=None,
                           open_timeout=open_timeout, max_size=None, close_timeout=1,
                           ping_interval=t.ping_interval_s, ping_timeout=t.ping_timeout_s)
        self.ws, self.url = ws, url
        self.lost = asyncio.Event()
        pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pending = pending
        self._reader = asyncio.get_running_loop().create_task(self._read(ws, pending, self.lost))
        resume = dict(self.contig)
        try:
            reply = await self._request_once("hello", open_timeout + t.request_timeout_s, {
                "v": 1, "token": sign_token(self.secret, self.user), "device": self.label,
                "resume": resume})
        except BaseException:
            await self.abort()
            raise
        if reply["t"] != "ok":
            await self.abort()
            raise HelloRefused(f"{self.label}: {reply}")
        self.welcome = reply
        self.stats["connects"] += 1
        self.online.set()
        for entry in reply["convs"]:
            conv = entry["conv"]
            self._track(conv)
            if conv not in resume:  # SPEC 6.4 and 12: page what was not resumed
                self._raise_want(conv, entry["last_seq"], urgent=True)
            elif entry["last_seq"] > resume[conv]:
                self.stats["resumed"] += entry["last_seq"] - resume[conv]
        if self._filler is None:
            self._filler = asyncio.get_running_loop().create_task(self._fill_loop())
        return reply

    async def abort(self) -> None:
        """Drop the connection at once, as a network that went away would."""
        ws = self.ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def drop(self) -> None:
        """Close the connection cleanly (the device may connect again)."""
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)
        await self.abort()

    async def close(self) -> None:
        self.closed = True
        if self._filler is not None:
            self._filler.cancel()
            await asyncio.gather(self._filler, return_exceptions=True)
            self._filler = None
        await self.drop()

    async def request(self, t: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send a request and return its reply; ``rate_limited`` is waited out and retried."""
        wait = self.timing.request_timeout_s if timeout is None else timeout
        reply: dict[str, Any] = {}
        for _ in range(50):
            reply = await self._request_once(t, wait, fields)
            if reply["t"] != "error" or reply.get("code") != "rate_limited":
                break
            self.stats["rate_limited"] += 1
            await asyncio.sleep(reply.get("retry_after_ms", 200) / 1000)
        return reply

    async def attempt(self, t: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send a request once; return its reply, a ``rate_limited`` refusal included."""
        return await self._request_once(t, self.timing.request_timeout_s if timeout is None else timeout,
                                        fields)

    async def ok(self, t: str, **fields: Any) -> dict[str, Any]:
        reply = await self.request(t, **fields)
        assert reply["t"] == "ok", (self.label, t, fields, reply)
        return reply

    async def signal(self, t: str, **fields: Any) -> None:
        """A frame without ``id`` (``typing``): no reply comes."""
        if self.ws is None:
            raise ConnectionLost(self.label)
        await self.ws.send(encode({"t": t, **fields}))

    async def _request_once(self, t: str, timeout: float, fields: dict[str, Any]) -> dict[str, Any]:
        ws, pending = self.ws, self._pending
        if ws is None or self.lost.is_set():
            raise ConnectionLost(self.label)
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        pending[rid] = future
        try:
            await ws.send(encode({"t": t, "id": rid, **fields}))
            return await asyncio.wait_for(future, timeout)
        except ConnectionClosed:
            raise ConnectionLost(self.label) from None
        finally:
            pending.pop(rid, None)
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # the send failed first: nobody waits for this one

    async def _read(self, ws: ClientConnection, pending: dict[int, asyncio.Future[dict[str, Any]]],
                    lost: asyncio.Event) -> None:
        try:
            async for data in ws:
                if not isinstance(data, bytes):
                    self.problems.append(f"{self.label}: the hub sent a text frame")
                    continue
                self._on_frame(decode(data, _CLIENT_LIMITS), pending)
        except (ConnectionClosed, OSError):
            pass
        except Exception as exc:  # a frame this client cannot take: a problem, never silent
            self.problems.append(f"{self.label}: reading failed: {exc!r}")
            await ws.close()
        finally:
            for future in pending.values():
                if not future.done():
                    future.set_exception(ConnectionLost(self.label))
            if lost is self.lost:
                self.online.clear()
            lost.set()

    def _on_frame(self, frame: dict[str, Any], pending: dict[int, asyncio.Future[dict[str, Any]]]) -> None:
        t = frame["t"]
        if t in ("ok", "error") and "id" in frame:
            future = pending.get(frame["id"])
            if future is not None and not future.done():
                future.set_result(frame)
        elif t == "error":
            self.problems.append(f"{self.label}: error without id: {frame}")
        elif t == "msg":
            self.stats["live"] += 1
            self.arrivals.setdefault(frame["conv"], []).append(frame["seq"])
            self.apply(Delivery(frame["conv"], frame["seq"], frame["from"], frame["cmid"]), "live")
        elif t == "gap":
            self.stats["gaps"] += 1
            self._track(frame["conv"])
            self._raise_want(frame["conv"], frame["to_seq"], urgent=True)
        else:
            self.events.append((time.monotonic(), frame))
            if t == "conv" and not frame.get("removed"):
                new = frame["conv"] not in self.contig
                self._track(frame["conv"])
                self._raise_want(frame["conv"], frame["last_seq"], urgent=new)

    # -- the client's part of the guarantee -------------------------------------------------

    def _track(self, conv: str) -> None:
        self.contig.setdefault(conv, 0)
        self.held.setdefault(conv, {})
        self.want.setdefault(conv, 0)

    def apply(self, d: Delivery, source: str) -> None:
        """File one message; show the application whatever became contiguous."""
        conv = d.conv
        self._track(conv)
        held = self.held[conv]
        before = held.get(d.seq)
        if before is not None:  # a repeat of (conv, seq): drop it
            self.stats["repeats"] += 1
            if before.key != d.key:
                self.problems.append(f"{self.label}: {conv} seq {d.seq} was {before.key}, now {d.key}")
            return
        held[d.seq] = d
        if source == "history":
            self.stats["fetched"] += 1
        mark = self.contig[conv]
        while mark + 1 in held:
            mark += 1
            self.app.append(held[mark])
        self.contig[conv] = mark
        self._raise_want(conv, d.seq, urgent=False)

    def own(self, conv: str, seq: int, cmid: str) -> None:
        """An ``ok`` for this device's send: it holds the message (no msg event comes)."""
        self.apply(Delivery(conv, seq, self.user, cmid), "own")

    def _raise_want(self, conv: str, seq: int, *, urgent: bool) -> None:
        if seq > self.want[conv]:
            self.want[conv] = seq
        mark = self.contig[conv]
        if mark >= self.want[conv]:
            self._hole_since.pop(conv, None)
            self._urgent.discard(conv)
            return
        lowest = self._hole_since.get(conv)
        if lowest is None or lowest[0] != mark + 1:
            self._hole_since[conv] = (mark + 1, time.monotonic())
        if urgent:
            self._urgent.add(conv)
        self._kick.set()

    async def _fill_loop(self) -> None:
        # Ends on ``closed`` too: Python 3.11's wait_for can swallow the cancel of close()
        # when a reply lands at that moment, and the loop would wait for ever.
        while not self.closed:
            await self._kick.wait()
            self._kick.clear()
            while self._hole_since and not self.closed:
                now = time.monotonic()
                due = [conv for conv, (_, since) in self._hole_since.items()
                       if conv in self._urgent or now - since >= self.timing.hole_grace_s]
                if not due:
                    await asyncio.sleep(0.05)
                    continue
                try:
                    for conv in due:
                        if not await self._fill_lowest(conv):
                            await asyncio.sleep(0.2)
                except (ConnectionLost, TimeoutError):
                    await self.online.wait()

    async def _fill_lowest(self, conv: str) -> bool:
        mark, held = self.contig[conv], self.held[conv]
        if mark >= self.want[conv]:
            self._hole_since.pop(conv, None)
            return True
        above = [s for s in held if s > mark]
        end = min(above) - 1 if above else self.want[conv]
        before, limit = end + 1, min(100, end - mark)
        reply = await self.request("history", conv=conv, before=before, limit=limit)
        self.stats["history_calls"] += 1
        if reply["t"] != "ok":
            self.problems.append(f"{self.label}: history of {conv} refused: {reply}")
            return False
        for m in reply["messages"]:
            self.apply(Delivery(m["conv"], m["seq"], m["from"], m["cmid"]), "history")
        got = [m["seq"] for m in reply["messages"]]
        if got != list(range(before - limit, before)):  # small messages: pages are never cut short
            self.problems.append(f"{self.label}: history of {conv} before {before} limit {limit} "
                                 f"gave {got}, though seq {end} was announced")
            return False
        return True

    # -- looking at what came -------------------------------------------------------

    def of(self, t: str, **match: Any) -> list[dict[str, Any]]:
        return [f for _, f in self.events if f["t"] == t and all(f.get(k) == v for k, v in match.items())]

    async def next_event(self, t: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The first event of type ``t`` matching ``match`` not yet taken (taken now)."""
        deadline = time.monotonic() + timeout
        while True:
            for index, (_, frame) in enumerate(self.events):
                if frame["t"] == t and all(frame.get(k) == v for k, v in match.items()):
                    del self.events[index]
                    return frame
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.label}: no {t} {match} in {timeout} s; got {self.events}")
            await asyncio.sleep(0.01)

    async def no_event(self, t: str, wait_s: float = 0.5, **match: Any) -> None:
        await asyncio.sleep(wait_s)
        assert not self.of(t, **match), f"{self.label}: unexpected {self.of(t, **match)}"

    # -- sending ---------------------------------------------------------------------

    async def send_until_acked(self, conv: str, cmid: str, acks: AckLog, *, within_s: float) -> bool:
        """Send one message and retry it, same ``cmid``, until acknowledged (SPEC 10)."""
        acks.attempt(conv, self.user, cmid)
        self.outbox[cmid] = conv
        deadline = time.monotonic() + within_s
        attempts = 0
        while time.monotonic() < deadline and not self.closed:
            if not self.online.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.online.wait(), max(0.01, deadline - time.monotonic()))
                continue
            attempts += 1
            try:
                reply = await self.request("send", conv=conv, cmid=cmid, text=f"text of {cmid}")
            except (ConnectionLost, TimeoutError):
                self.stats["send_retries"] += 1
                await asyncio.sleep(0.05)
                continue
            if reply["t"] == "ok":
                if reply["conv"] != conv:
                    self.problems.append(f"{self.label}: {cmid} acknowledged in {reply['conv']}")
                acks.ack(conv, reply["seq"], self.user, cmid)
                self.own(conv, reply["seq"], cmid)
                self.outbox.pop(cmid, None)
                self.stats["acked"] += 1
                if attempts > 1:
                    self.stats["acked_after_retry"] += 1
                return True
            if reply.get("code") in ("unavailable", "internal"):
                self.stats["send_retries"] += 1
                await asyncio.sleep(0.1)
                continue
            self.problems.append(f"{self.label}: send {cmid} to {conv} refused: {reply}")
            self.outbox.pop(cmid, None)
            return False
        return False

    async def flush_outbox(self, acks: AckLog, *, within_s: float) -> None:
        for cmid, conv in list(self.outbox.items()):
            await self.send_until_acked(conv, cmid, acks, within_s=within_s)




# -- processes ------------------------------------------------------------------------------


class HubNode:
    """One ``clipwire serve`` process; restarts on the port it first got; log in a file."""

    def __init__(self, name: str, workdir: Path, args: list[str], secret: str = SECRET,
                 env: Mapping[str, str] | None = None, resume_cap: int | None = None) -> None:
        self.name = name
        self.workdir = workdir
        self.args = args
        self.env = {**os.environ, "CLIPWIRE_SECRET": secret, "CLIPWIRE_LOG_LEVEL": "WARNING",
                    "CLIPWIRE_DM_POLICY": "everyone", "CLIPWIRE_RATE_SEND_PER_S": "100000",
                    "CLIPWIRE_RATE_HISTORY_PER_S": "100000", "CLIPWIRE_RATE_FRIEND_PER_S": "100000",
                    **({"CLIPWIRE_RESUME_CAP": str(resume_cap)} if resume_cap else {}), **(env or {})}
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.url = ""
        self.paused = False
        self._log: IO[str] | None = None

    async def start(self, timeout: float = 30.0) -> str:
        """Start (again, on the same port once it has one); return the URL."""
        for attempt in range(20):
            self._spawn()
            assert self.proc is not None and self.proc.stdout is not None
            try:
                line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)
            except TimeoutError:
                self.kill()
                raise RuntimeError(f"{self.name} printed nothing in {timeout} s") from None
            found = re.search(r"(ws://\S+/ws)", line)
            if found:
                self.url = found.group(1)
                self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
                return self.url
            await asyncio.to_thread(self.proc.wait, 10)
            if self.port == 0 or attempt == 19:
                break
            await asyncio.sleep(0.1)  # the port is still held by the process just killed
        raise RuntimeError(f"{self.name} did not start:\n{self.log()[-3000:]}")

    def _spawn(self) -> None:
        self._close_files()
        self._log = open(self.log_path, "a")  # closed in _close_files
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clipwire.server", "serve", "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE, stderr=self._log, text=True, env=self.env, cwd=self.workdir)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.paused = False
        self._close_files()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    async def stop(self) -> None:
        """SIGTERM (the hub drains), then wait; SIGKILL after 15 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.resume()  # a stopped process keeps SIGTERM pending
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_files()

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def _close_files(self) -> None:
        if self.proc is not None and self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if self._log is not None and not self._log.closed:
            self._log.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def errors(self) -> list[str]:
        """Log records at ERROR or CRITICAL, or holding a traceback: a hub that hid a failure.
        Each record is its first line and, for a traceback, its last (the exception)."""
        found = []
        for record in re.split(r"\n(?=\d{4}-\d\d-\d\d )", self.log()):
            lines = record.strip().splitlines()
            if lines and (" ERROR " in lines[0] or " CRITICAL " in lines[0] or "Traceback" in record):
                found.append(lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}")
        return found


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# -- a run: devices, conversations, traffic, scoring ----------------------------------------


@dataclass
class Plan:
    """The size and rhythm of one scenario run."""

    users: int = 24
    second_devices: int = 8  # the first users get a second device (on the other node, if two)
    group_size: int = 4
    seconds: float = 6.0  # traffic
    send_interval_s: float = 0.25  # mean pause between one device's sends
    fault_every_s: float = 2.0
    fault_s: float = 0.5  # how long a hub is dead or frozen, Redis down, or the network out
    cut_fraction: float = 0.04  # network: share of connections cut at each tick (4 a second)
    settle_s: float = 30.0
    seed: int = 7
    # Small, so that resumes after a fault end in a gap event filled from history.
    resume_cap: int = 5
    last_words: int = 2  # conversations that go quiet at each fault (see Run.last_words)
    last_words_lead_s: float = 0.01  # the fault comes up to this long after them (0: at once)
    kill_burst: int = 4  # pubsub-kill: CLIENT KILLs 3 ms apart at each fault
    timing: ClientTiming = field(default_factory=ClientTiming)


class Run:
    """Devices in groups and DMs, sending until stopped; every ack and every delivery kept."""

    def __init__(self, name: str, plan: Plan, secret: str) -> None:
        self.name = name
        self.plan = plan
        self.secret = secret
        self.rng = random.Random(plan.seed)
        self.acks = AckLog()
        self.devices: list[Device] = []
        self.members: dict[str, list[str]] = {}
        self.convs_of: dict[str, list[str]] = {}
        self.url_of: Callable[[Device], str] = lambda d: d.url
        self.faults: list[dict[str, Any]] = []
        self.injections = 0
        self.quiet: set[str] = set()  # conversations that take no new message any more
        self._last = 0
        self.started = time.monotonic()
        self.reconnects = 0
        self.keeper_failures: list[str] = []
        self._sending = False
        self._senders: list[asyncio.Task[Any]] = []
        self._keepers: list[asyncio.Task[None]] = []

    def fault(self, kind: str, **details: Any) -> None:
        self.faults.append({"at_s": round(time.monotonic() - self.started, 3), "fault": kind, **details})

    async def build(self, homes: Sequence[Callable[[], str]]) -> None:
        """Users ``u000..``: user i lives on home ``i % len(homes)``; the first
        ``second_devices`` users have a second device on the next home. Groups of
        ``group_size`` consecutive users, and a DM between user i and user i + n/2."""
        p = self.plan
        names = [f"u{i:03}" for i in range(p.users)]
        home_of: dict[Device, Callable[[], str]] = {}
        first: dict[str, Device] = {}
        for i, name in enumerate(names):
            device = Device(name, name, self.secret, p.timing)
            self.devices.append(device)
            home_of[device] = homes[i % len(homes)]
            first[name] = device
        for i, name in enumerate(names[:p.second_devices]):
            device = Device(name, f"{name}-2", self.secret, p.timing)
            self.devices.append(device)
            home_of[device] = homes[(i + 1) % len(homes)]
        self.url_of = lambda d: home_of[d]()
        await gather_limited(d.connect(self.url_of(d)) for d in self.devices)

        async def group(index: int) -> None:
            users = names[index * p.group_size:(index + 1) * p.group_size]
            reply = await first[users[0]].request("group.create", members=users[1:], title=f"g{index}")
            assert reply["t"] == "ok", reply
            self.members[reply["conv"]] = users

        async def dm(index: int) -> None:
            a, b = names[index], names[index + p.users // 2]
            device = first[a]
            cmid = "open"
            reply = await device.request("send", to=b, cmid=cmid, text=f"hi {b}")
            assert reply["t"] == "ok", reply
            self.acks.ack(reply["conv"], reply["seq"], a, cmid)
            device.own(reply["conv"], reply["seq"], cmid)
            self.members[reply["conv"]] = [a, b]

        await gather_limited([*(group(g) for g in range(p.users // p.group_size)),
                              *(dm(i) for i in range(p.users // 2))])
        for conv, users in self.members.items():
            for user in users:
                self.convs_of.setdefault(user, []).append(conv)
        await until(lambda: all(c in d.contig for d in self.devices for c in self.convs_of[d.user]),
                    15, "every device heard of its conversations")

    # -- traffic ---------------------------------------------------------------------

    def start_traffic(self) -> None:
        loop = asyncio.get_running_loop()
        self._sending = True
        for device in self.devices:
            self._senders.append(loop.create_task(self._sender(device, self.rng.random())))
            self._keepers.append(loop.create_task(self._keep_connected(device)))

    async def _sender(self, device: Device, seed: float) -> None:
        rng = random.Random(seed)
        interval = self.plan.send_interval_s
        await asyncio.sleep(rng.uniform(0, interval))
        for count in itertools.count(1):
            if not self._sending:
                return
            choices = [c for c in self.convs_of[device.user] if c not in self.quiet]
            if choices:
                conv = rng.choice(choices)
                await device.send_until_acked(conv, f"{device.label}.{count}", self.acks,
                                              within_s=self.plan.settle_s)
            await asyncio.sleep(rng.uniform(0.5, 1.5) * interval)

    def last_words(self) -> None:
        """Just before a fault: a few conversations get one last message each, sent now
        without waiting, and then nothing more for the rest of the run. If the fault
        loses such a message on its way to a device, no later message can reveal the
        hole: only the hub (a resume, a gap) can. At most half the conversations go quiet."""
        active = sorted(c for c in self.members if c not in self.quiet)
        room = len(active) - len(self.members) // 2
        for conv in self.rng.sample(active, max(0, min(self.plan.last_words, room))):
            self.quiet.add(conv)
            sender = next(d for d in self.devices if d.user in self.members[conv])
            self._last += 1
            task = asyncio.get_running_loop().create_task(sender.send_until_acked(
                conv, f"{sender.label}.last{self._last}", self.acks, within_s=self.plan.settle_s))
            self._senders.append(task)

    async def _keep_connected(self, device: Device) -> None:
        backoff = 0.05
        while not device.closed:
            await device.lost.wait()
            if device.closed:
                return
            try:
                await device.connect(self.url_of(device))
                self.reconnects += 1
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, reset, timed out: back off and try again
                device.stats["connect_failures"] += 1
                if device.stats["connect_failures"] > 2000:
                    self.keeper_failures.append(f"{device.label}: gave up: {exc!r}")
                    return
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, 1.0)

    async def stop_traffic(self) -> None:
        """No new messages; sends in flight go on until acknowledged (or give up)."""
        self._sending = False
        await asyncio.gather(*self._senders)

    async def settle(self) -> float | None:
        """Wait, without helping, until every device holds every acknowledged message of
        its conversations and has no hole left; return how long that took (None: never)."""
        def done() -> bool:
            return all(d.connected and not d.holes() and not d.outbox
                       and all(d.contig.get(c, 0) >= self.acks.last_seq(c) for c in self.convs_of[d.user])
                       for d in self.devices)

        try:
            return await until(done, self.plan.settle_s, "settled")
        except AssertionError:
            return None

    async def stored(self) -> list[Delivery]:
        """Every conversation as the store holds it, read through a member's connection
        (the pages are not applied to the device)."""
        out: list[Delivery] = []
        for conv, users in sorted(self.members.items()):
            if next((d for d in self.devices if d.user in users and d.connected), None) is None:
                continue
            pages: list[list[Delivery]] = []
            before: int | None = None
            for _ in range(10_000):
                fields: dict[str, Any] = {"conv": conv, "limit": 100}
                if before is not None:
                    fields["before"] = before
                reply = await self._read_store(users, fields)
                if reply["t"] != "ok":
                    break
                page = [Delivery(m["conv"], m["seq"], m["from"], m["cmid"]) for m in reply["messages"]]
                pages.insert(0, page)
                if not page or page[0].seq == 1:
                    break
                before = page[0].seq
            out.extend(d for page in pages for d in page)
        return out

    async def _read_store(self, users: Iterable[str], fields: dict[str, Any]) -> dict[str, Any]:
        """One history page through any connected member; a fault still cutting connections
        may end the one asked, so the page is asked again (of a device back by then)."""
        members = set(users)
        for attempt in range(50):
            reader = next((d for d in self.devices if d.user in members and d.connected), None)
            if reader is not None:
                try:
                    return await reader.request("history", **fields)
                except ConnectionLost:
                    if attempt == 49:
                        raise
            await asyncio.sleep(0.2)
        raise ConnectionLost(f"no member of {fields['conv']} stayed connected to read it")

    async def close(self) -> None:
        self._sending = False
        for task in self._senders:
            task.cancel()
        for device in self.devices:
            device.closed = True
        for task in self._keepers:
            task.cancel()
        await asyncio.gather(*self._senders, *self._keepers, return_exceptions=True)
        await asyncio.gather(*(d.close() for d in self.devices), return_exceptions=True)

    async def result(self, settle_s: float | None, nodes: Sequence[HubNode],
                     extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        store = await self.stored()
        views: dict[str, tuple[Sequence[Delivery], Iterable[str]]] = {
            d.label: (d.app, self.convs_of[d.user]) for d in self.devices}
        views["store"] = (store, list(self.members))
        report = score_run(views, self.acks)
        stats: Counter[str] = Counter()
        for d in self.devices:
            stats.update(d.stats)
        problems = [p for d in self.devices for p in d.problems] + self.keeper_failures
        unacked = sum(len(d.outbox) for d in self.devices)
        errors = {node.name: node.errors()[:10] for node in nodes if node.errors()}
        report["passed"] = bool(report["passed"] and settle_s is not None and not unacked
                                and not problems)
        report.update({
            "scenario": self.name,
            "settled_s": None if settle_s is None else round(settle_s, 2),
            "unacknowledged": unacked,
            "client_problems": problems[:10],
            "hub_errors": errors,
            "faults": self.injections,
            "fault_log": self.faults[:50],
            "plan": {k: v for k, v in asdict(self.plan).items() if k != "timing"},
            "conversations": len(self.members),
            "quiet_conversations": len(self.quiet),
            "stats": {
                "reconnects": self.reconnects,
                "connect_failures": stats["connect_failures"],
                "send_retries": stats["send_retries"],
                "acked_after_retry": stats["acked_after_retry"],
                "live_msgs": stats["live"],
                "repeats_dropped": stats["repeats"],
                "gap_events": stats["gaps"],
                "history_calls": stats["history_calls"],
                "filled_by_history": stats["fetched"],
            },
            **(extra or {}),
        })
        return report


async def until(check: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> float:
    """Poll ``check`` until true; return the seconds it took, or raise AssertionError naming ``what``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what() if callable(what) else what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def gather_limited(works: Iterable[Awaitable[Any]], limit: int = 20) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(work: Awaitable[Any]) -> Any:
        async with gate:
            return await work

    return await asyncio.gather(*(one(w) for w in works))


async def _traffic_with_faults(run: Run, inject: Callable[[], Awaitable[None]]) -> float | None:
    """Traffic for ``plan.seconds``, ``inject`` every ``plan.fault_every_s``; then settle."""
    run.start_traffic()
    end = time.monotonic() + run.plan.seconds
    await asyncio.sleep(min(run.plan.fault_every_s / 2, run.plan.seconds / 4))
    while time.monotonic() < end:
        run.injections += 1
        run.last_words()
        lead = run.rng.uniform(0, run.plan.last_words_lead_s)
        if lead > 0:  # the last words reach the hub, which may have stored and sent them, or not
            await asyncio.sleep(lead)
        await inject()
        await asyncio.sleep(max(0.0, min(run.plan.fault_every_s, end - time.monotonic())))
    await run.stop_traffic()
    return await run.settle()


# -- the scenarios -------------------------------------------------------------------------


async def run_kill(plan: Plan, workdir: Path, *, secret: str = SECRET) -> dict[str, Any]:
    """One hub on SQLite, SIGKILLed mid-traffic and restarted on the same port."""
    hub = HubNode("hub", workdir, ["--db", str(workdir / "kill.db")], secret, resume_cap=plan.resume_cap)
    await hub.start()
    run = Run("kill", plan, secret)
    try:
        await run.build([lambda: hub.url])

        async def inject() -> None:
            hub.kill()
            run.fault("SIGKILL")
            await asyncio.sleep(plan.fault_s)
            await hub.start()
            run.fault("restarted")

        settled = await _traffic_with_faults(run, inject)
        return await run.result(settled, [hub])
    finally:
        await run.close()
        await hub.stop()


async def run_stop(plan: Plan, workdir: Path, *, secret: str = SECRET) -> dict[str, Any]:
    """One hub frozen with SIGSTOP for ``fault_s`` (longer than the clients' request
    timeout and keepalive, so they retry sends and some reconnect), then SIGCONT."""
    hub = HubNode("hub", workdir, ["--db", str(workdir / "stop.db")], secret, resume_cap=plan.resume_cap)
    await hub.start()
    run = Run("stop", plan, secret)
    try:
        await run.build([lambda: hub.url])

        async def inject() -> None:
            hub.pause()
            run.fault("SIGSTOP")
            try:
                await asyncio.sleep(plan.fault_s)
            finally:
                hub.resume()
            run.fault("SIGCONT")

        settled = await _traffic_with_faults(run, inject)
        return await run.result(settled, [hub])
    finally:
        hub.resume()
        await run.close()
        await hub.stop()


async def run_network(plan: Plan, workdir: Path, *, secret: str = SECRET) -> dict[str, Any]:
    """Every client reaches the hub through a fault proxy: a share of the connections is
    cut four times a second, and every ``fault_every_s`` the network is out for
    ``fault_s`` (new connections refused, hub-to-client bytes black-holed, then every
    connection cut: a stalled TCP connection ends, it never skips bytes)."""
    hub = HubNode("hub", workdir, ["--db", str(workdir / "network.db")], secret, resume_cap=plan.resume_cap)
    await hub.start()
    proxy = await FaultProxy(hub.port).start()
    run = Run("network", plan, secret)
    rng = random.Random(plan.seed + 1)
    cuts = 0
    cutting = True

    async def flaky() -> None:
        nonlocal cuts
        while cutting:
            await asyncio.sleep(0.25)
            cuts += proxy.cut_random(plan.cut_fraction, rng)

    chaos: asyncio.Task[None] | None = None
    try:
        await run.build([lambda: proxy.url])
        chaos = asyncio.get_running_loop().create_task(flaky())

        async def inject() -> None:
            proxy.refuse = proxy.blackhole = True
            run.fault("outage", links=proxy.links)
            await asyncio.sleep(plan.fault_s)
            proxy.cut()
            proxy.refuse = proxy.blackhole = False
            run.fault("back")

        settled = await _traffic_with_faults(run, inject)
        cutting = False
        await chaos
        return await run.result(settled, [hub], {"random_cuts": cuts,
                                                 "proxy_connections": proxy.accepted})
    finally:
        cutting = False
        if chaos is not None:
            chaos.cancel()
            await asyncio.gather(chaos, return_exceptions=True)
        await run.close()
        await proxy.close()
        await hub.stop()


def _node_args(redis_url: str, dsn: str) -> list[str]:
    return ["--redis-url", redis_url, "--database-url", dsn, "--migrate-on-start",
            "--presence-ttl-s", "1.5"]


async def _two_nodes(workdir: Path, redis: RedisControl, dsn: str, secret: str,
                     plan: Plan) -> list[HubNode]:
    nodes = [HubNode(f"node{i}", workdir, _node_args(redis.url, dsn), secret, resume_cap=plan.resume_cap)
             for i in range(2)]
    await asyncio.gather(*(node.start() for node in nodes))
    return nodes


async def run_redis_restart(plan: Plan, workdir: Path, *, redis: RedisControl, dsn: str,
                            secret: str = SECRET) -> dict[str, Any]:
    """Two hubs on PostgreSQL and Redis; Redis SIGKILLed and started again, empty."""
    nodes = await _two_nodes(workdir, redis, dsn, secret, plan)
    run = Run("redis-restart", plan, secret)
    try:
        await run.build([lambda: nodes[0].url, lambda: nodes[1].url])

        async def inject() -> None:
            await asyncio.to_thread(redis.stop)
            run.fault("redis SIGKILL")
            await asyncio.sleep(plan.fault_s)
            await asyncio.to_thread(redis.start)
            run.fault("redis started empty")

        settled = await _traffic_with_faults(run, inject)
        return await run.result(settled, nodes, {"resets_logged": _resets(nodes)})
    finally:
        await run.close()
        await asyncio.gather(*(node.stop() for node in nodes))


# The negative control: hubs that do not notice that their pub/sub connection came back.
_UNDETECTED = """\
try:
    from clipwire.server.broker import redis as _redis

    async def _unnoticed(self, connection):
        return None

    _redis.RedisBroker._connected = _unnoticed
except Exception:
    pass
"""


async def run_pubsub_kill(plan: Plan, workdir: Path, *, redis: RedisControl, dsn: str,
                          secret: str = SECRET, detect: bool = True) -> dict[str, Any]:
    """Two hubs on PostgreSQL and Redis; every ``fault_every_s`` their pub/sub connections
    are killed with ``CLIENT KILL TYPE pubsub``, right after a few last words were sent
    (``Run.last_words``). What is published while a node resubscribes is lost without a
    word: the node must notice the reconnect and send its clients ``gap`` events.

    ``detect=False`` is the negative control: the hubs run with the reconnect callback
    turned off (a ``sitecustomize`` on their PYTHONPATH), and the checker must then see
    messages lost."""
    import redis.asyncio as aioredis

    env: dict[str, str] = {}
    if not detect:
        control = workdir / "undetected"
        await asyncio.to_thread(control.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread((control / "sitecustomize.py").write_text, _UNDETECTED)
        env["PYTHONPATH"] = os.pathsep.join([str(control), str(ROOT), os.environ.get("PYTHONPATH", "")])
    nodes = [HubNode(f"node{i}", workdir, _node_args(redis.url, dsn), secret, env=env,
                     resume_cap=plan.resume_cap) for i in range(2)]
    await asyncio.gather(*(node.start() for node in nodes))
    run = Run("pubsub-kill" if detect else CONTROL, plan, secret)
    admin = aioredis.from_url(redis.url)
    killed = 0
    try:
        await run.build([lambda: nodes[0].url, lambda: nodes[1].url])

        async def inject() -> None:
            nonlocal killed
            # A node resubscribes within a millisecond or two of a kill, so a burst of
            # kills keeps the window open while the last words are stored and published.
            n = 0
            for i in range(plan.kill_burst):
                if i:
                    await asyncio.sleep(0.003)
                n += int(await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))  # type: ignore[no-untyped-call]
            killed += n
            run.fault("CLIENT KILL TYPE pubsub", killed=n)

        settled = await _traffic_with_faults(run, inject)
        await asyncio.sleep(0.2)
        return await run.result(settled, nodes, {"pubsub_connections_killed": killed,
                                                 "resets_logged": _resets(nodes)})
    finally:
        await admin.aclose()
        await run.close()
        await asyncio.gather(*(node.stop() for node in nodes))


def _resets(nodes: Sequence[HubNode]) -> int:
    """How often the nodes logged that their pub/sub connection came back (a detected loss)."""
    return sum(node.log().count("reconnected to Redis") for node in nodes)


# -- the command line -------------------------------------------------------------------------


def default_plan(name: str, seconds: float) -> Plan:
    """The long run's plan for ``name`` with ``seconds`` of traffic."""
    plan = Plan(users=40, second_devices=12, group_size=5, seconds=seconds, send_interval_s=0.3)
    if name == "kill":
        return replace(plan, fault_every_s=8.0, fault_s=0.5)
    if name == "stop":
        return replace(plan, fault_every_s=10.0, fault_s=4.0)
    if name == "network":
        return replace(plan, fault_every_s=5.0, fault_s=1.0)
    if name == "redis-restart":
        return replace(plan, fault_every_s=8.0, fault_s=1.0)
    return replace(plan, fault_every_s=1.0, last_words_lead_s=0.0)


async def run_scenario(name: str, plan: Plan, workdir: Path, *,
                       redis_factory: Callable[[], RedisControl] | None = None,
                       schema: Callable[[], AbstractAsyncContextManager[str]] | None = None,
                       secret: str = SECRET) -> dict[str, Any]:
    started = time.monotonic()
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    if name in MULTI_NODE:
        if redis_factory is None or schema is None:
            raise ValueError(f"{name} needs Redis and PostgreSQL")
        redis = redis_factory()
        redis.start()
        try:
            async with schema() as dsn:
                if name == "redis-restart":
                    result = await run_redis_restart(plan, workdir, redis=redis, dsn=dsn, secret=secret)
                else:
                    result = await run_pubsub_kill(plan, workdir, redis=redis, dsn=dsn, secret=secret,
                                                   detect=name == "pubsub-kill")
        finally:
            redis.stop()
    else:
        single = {"kill": run_kill, "stop": run_stop, "network": run_network}[name]
        result = await single(plan, workdir, secret=secret)
    if name == CONTROL:  # the negative control passes when the checker sees the loss
        result["passed"] = result["totals"]["lost"] > 0
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result


def summary_line(result: dict[str, Any]) -> str:
    t = result["totals"]
    verdict = "PASS" if result["passed"] else "FAIL"
    if result["scenario"] == CONTROL:
        verdict += " (a control: it passes when messages are lost)"
    errors = sum(map(len, result["hub_errors"].values()))
    return (f"{result['scenario']:<14} {verdict}  acked {result['acknowledged']:>6}  "
            f"devices {result['devices'] - 1:>3}+store  delivered {t['delivered']:>7}/{t['expected']:<7} "
            f"lost {t['lost']}  dup {t['duplicated']}  unexpected {t['unexpected']}  "
            f"out-of-order {t['out_of_order']}  faults {result['faults']}  "
            f"reconnects {result['stats']['reconnects']}  gaps {result['stats']['gap_events']}  "
            f"settled {result['settled_s']} s  wall {result['wall_s']} s"
            + (f"  HUB LOG ERRORS {errors}" if errors else ""))


async def _main(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        print(f"unknown scenarios: {', '.join(sorted(unknown))} (known: {', '.join(SCENARIOS)})")
        return 2
    seconds = max(5.0, args.minutes * 60 / len(names) - 15)  # ~15 s of set-up and settling each
    database_url = os.environ.get("DATABASE_URL", "postgresql://127.0.0.1:5432/test")
    results: dict[str, Any] = {}
    controls: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        root = Path(args.workdir) if args.workdir else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="clipwire-faults-")))
        for name in names:
            plan = replace(default_plan(name, seconds), seed=args.seed)
            print(f"{name}: {plan.seconds:.0f} s of traffic, {plan.users + plan.second_devices} devices ...",
                  flush=True)
            try:
                result = await run_scenario(name, plan, root / name, redis_factory=LocalRedis,
                                            schema=lambda: pg_schema(database_url))
            except Exception as exc:  # a scenario that cannot run here is reported, not hidden
                results[name] = {"scenario": name, "passed": False, "error": repr(exc)}
                print(f"{name:<14} ERROR {exc!r}", flush=True)
                continue
            results[name] = result
            print(summary_line(result), flush=True)
        if args.control:
            plan = replace(default_plan("pubsub-kill", 10.0), seed=args.seed, settle_s=5.0)
            print(f"{CONTROL}: the negative control, hubs blind to pub/sub reconnects ...", flush=True)
            try:
                result = await run_scenario(CONTROL, plan, root / CONTROL, redis_factory=LocalRedis,
                                            schema=lambda: pg_schema(database_url))
                print(f"{CONTROL}: {'PASS' if result['passed'] else 'FAIL'}, the checker saw "
                      f"{result['totals']['lost']} lost (none would mean the scenario cannot tell)",
                      flush=True)
            except Exception as exc:
                result = {"scenario": CONTROL, "passed": False, "error": repr(exc)}
                print(f"{CONTROL} ERROR {exc!r}", flush=True)
            controls[CONTROL] = result
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "minutes": args.minutes,
        "seed": args.seed,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "passed": all(r.get("passed") for r in (*results.values(), *controls.values())),
        "scenarios": results,
        "controls": controls,
    }
    path = Path(args.out)
    await asyncio.to_thread(_write_json, path, out)
    print(f"{'PASS' if out['passed'] else 'FAIL'}: scores in {path}")
    return 0 if out["passed"] else 1


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="total time for all scenarios [5]")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated, of {', '.join(SCENARIOS)} [all]")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--control", action="store_true",
                        help=f"also run {CONTROL}: hubs blind to pub/sub reconnects, where the checker "
                        "must see loss (proof that pubsub-kill can tell)")
    parser.add_argument("--workdir", help="keep databases and hub logs here [a temporary directory]")
    parser.add_argument("--out", default=str(RESULTS), help=f"results file [{RESULTS.relative_to(ROOT)}]")
    return asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
