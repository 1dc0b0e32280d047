"""Helpers for the multi-node tests: real hub processes, a Redis link that can stall,
and devices that keep the client's part of the delivery guarantee (SPEC section 10).

``Device`` is written from the protocol, not from the SDK, and follows only the
rules the SPEC gives a client: it drops repeats of ``(conv, seq)``, keeps its
highest contiguous ``seq`` per conversation and resumes with exactly that, fills
holes (a ``seq`` jump, after a short grace; a ``gap`` at once) with ``history``,
and pages ``history`` after a welcome only for conversations it did not name in
``resume``. So a device converges only if the hub keeps its side of the deal.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol
from wire import SECRET, token

from benchmarks.faults import gather_limited, until
from clipwire.protocol import decode, encode

PRESENCE_TTL_S = 1.5
# The documented bound (SCALING.md, RedisPresence): a dead node's users are offline within ttl * 4/3.
OFFLINE_BOUND_S = PRESENCE_TTL_S * 4 / 3
HOLE_GRACE_S = 0.3  # a live message may overtake another from a second node: wait before fetching
REQUEST_TIMEOUT_S = 10.0


class ConnectionLost(Exception):
    """The device's connection ended before the reply came."""


# -- hub processes --------------------------------------------------------------


class NodeProcess:
    """One ``clipwire serve`` process; its log (stderr) goes to a file beside the test."""

    def __init__(self, name: str, workdir: Path, args: list[str]) -> None:
        self.name = name
        self.workdir = workdir
        self.args = args
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.banner = ""  # the line the hub printed when it was ready
        self._log: IO[str] | None = None

    def spawn(self) -> None:
        env = {**os.environ, "CLIPWIRE_SECRET": SECRET, "CLIPWIRE_LOG_LEVEL": "WARNING"}
        self._log = open(self.log_path, "a")  # closed in kill() and wait_stopped()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clipwire.server", "serve", *self.args],
            stdout=subprocess.PIPE, stderr=self._log, text=True, env=env, cwd=self.workdir,
        )

    async def ready(self, timeout: float = 30.0) -> str:
        """Wait for the line naming the URL; return the URL."""
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)
        except TimeoutError:
            self.kill()
            raise AssertionError(f"node {self.name} printed nothing in {timeout} s:\n{self.log()}") from None
        found = re.search(r"(ws://\S+/ws)", line)
        if not found:
            self.kill()
            raise AssertionError(f"node {self.name} did not start: {line!r}\n{self.log()}")
        self.url, self.banner = found.group(1), line.strip()
        return self.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye to Redis, no flush, nothing."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_files()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def wait_stopped(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._close_files()
        return code

    def _close_files(self) -> None:
        if self.proc is not None and self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if self._log is not None and not self._log.closed:
            self._log.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def errors(self) -> list[str]:
        """Log lines at ERROR level and tracebacks: a hub that hid a failure."""
        return [line for line in self.log().splitlines()
                if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]


def node_args(redis_url: str, dsn: str, *, dm_policy: str = "everyone",
              ttl_s: float = PRESENCE_TTL_S, port: int = 0) -> list[str]:
    """``dsn``: a PostgreSQL URL, or the path of the SQLite file the nodes share."""
    store = ["--database-url", dsn] if dsn.startswith("postgres") else ["--db", dsn]
    return ["--port", str(port), "--redis-url", redis_url, *store,
            "--dm-policy", dm_policy, "--migrate-on-start", "--presence-ttl-s", str(ttl_s)]


# -- a Redis link that can stall --------------------------------------------------


class RedisLink:
    """A TCP relay between one node and Redis. ``hold()`` stops what the node sends
    from reaching Redis (its publishes and heartbeats stall), as a cut link would."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> RedisLink:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def hold(self) -> None:
        self._flowing.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.redis_port)
        self._writers += [writer, up_writer]
        loop = asyncio.get_running_loop()
        for task in (loop.create_task(self._pump(reader, up_writer, held=True)),
                     loop.create_task(self._pump(up_reader, writer, held=False))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, held: bool) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if held:
                    await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


# -- a device -------------------------------------------------------------------------


class Device:
    """One device of ``user``: requests matched by id, every frame read as it comes."""

    def __init__(self, user: str, label: str | None = None) -> None:
        self.user = user
        self.label = label or user
        self.url = ""
        self.ws: ClientConnection | None = None
        self.welcome: dict[str, Any] = {}
        # conv -> seq -> (from, cmid): every message held, each (conv, seq) once.
        self.held: dict[str, dict[int, tuple[str, str]]] = {}
        self.contig: dict[str, int] = {}  # highest contiguous seq per conversation
        self.want: dict[str, int] = {}  # highest seq known to exist
        self.arrivals: dict[str, list[int]] = {}  # seqs of msg events in the order they came
        self.events: list[tuple[float, dict[str, Any]]] = []  # other events, with arrival time
        self.repeats = 0  # (conv, seq) received again and dropped
        self.conflicts: list[str] = []  # two different messages for one (conv, seq), or a bad reply
        self.gaps = 0  # gap events received
        self.fetched = 0  # missing messages got through history
        self.history_calls = 0
        self.connects = 0
        self.rate_limited = 0  # refusals for rate, waited out and retried
        self.resumed = 0  # messages newer than the resume marks, as the welcomes counted them
        self.lost = asyncio.Event()  # the current connection ended
        self.lost.set()
        self.online = asyncio.Event()  # welcomed, and the connection is still up
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._filler: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._hole_since: dict[str, tuple[int, float]] = {}  # conv -> (lowest missing seq, since)
        self._urgent: set[str] = set()  # conversations whose holes will not fill by themselves
        self._closed = False

    @property
    def connected(self) -> bool:
        return self.ws is not None and not self.lost.is_set()

    # -- connection -----------------------------------------------------------

    async def connect(self, url: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Connect and say hello, resuming every conversation from its contiguous mark."""
        ws = await connect(url, subprotocols=[Subprotocol("clipwire.v1")], compression=None,
                           open_timeout=timeout, max_size=None)
        self.ws, self.url = ws, url
        self.lost = asyncio.Event()
        pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pending = pending
        self._reader = asyncio.get_running_loop().create_task(self._read(ws, pending, self.lost))
        resume = dict(self.contig)
        try:
            reply = await self.request("hello", timeout=timeout, v=1, token=token(self.user),
                                       device=self.label, resume=resume)
            if reply["t"] != "ok":
                raise AssertionError(f"{self.label}: hello refused: {reply}")
        except BaseException:
            await ws.close()
            raise
        self.welcome = reply
        self.connects += 1
        self.online.set()
        for entry in reply["convs"]:
            conv = entry["conv"]
            self._track(conv)
            if conv not in resume:  # SPEC 6.4: page what the welcome shows beyond our state
                self._raise_want(conv, entry["last_seq"], urgent=True)
            elif entry["last_seq"] > resume[conv]:
                self.resumed += entry["last_seq"] - resume[conv]  # the backlog owed to this resume
        if self._filler is None:
            self._filler = asyncio.get_running_loop().create_task(self._fill_loop())
        return reply

    async def close(self) -> None:
        self._closed = True
        if self._filler is not None:
            self._filler.cancel()
            await asyncio.gather(self._filler, return_exceptions=True)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def drop(self) -> None:
        """Close this connection (the device goes away; it may connect again)."""
        if self.ws is not None:
            await self.ws.close()
        await self.lost.wait()

    async def request(self, t: str, timeout: float = REQUEST_TIMEOUT_S, **fields: Any) -> dict[str, Any]:
        """Send a request; return its reply frame (``ok`` or ``error``). A ``rate_limited``
        refusal is retried after the ``retry_after_ms`` it names, as a client should."""
        for _ in range(50):
            reply = await self._request_once(t, timeout, fields)
            if reply["t"] != "error" or reply.get("code") != "rate_limited":
                break
            self.rate_limited += 1
            await asyncio.sleep(reply.get("retry_after_ms", 200) / 1000)
        return reply

    async def attempt(self, t: str, timeout: float = REQUEST_TIMEOUT_S, **fields: Any) -> dict[str, Any]:
        """Send a request once; return its reply, a ``rate_limited`` refusal included."""
        return await self._request_once(t, timeout, fields)

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

    async def ok(self, t: str, **fields: Any) -> dict[str, Any]:
        reply = await self.request(t, **fields)
        assert reply["t"] == "ok", (self.label, t, fields, reply)
        return reply

    async def signal(self, t: str, **fields: Any) -> None:
        assert self.ws is not None
        await self.ws.send(encode({"t": t, **fields}))

    async def _read(self, ws: ClientConnection, pending: dict[int, asyncio.Future[dict[str, Any]]],
                    lost: asyncio.Event) -> None:
        try:
            async for data in ws:
                assert isinstance(data, bytes), f"hub sent a text frame: {data!r}"
                self._on_frame(decode(data), pending)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a frame this client cannot take: fail the test, not silently
            self.conflicts.append(f"{self.label}: reading failed: {exc!r}")
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
        elif t == "msg":
            self._apply(frame, "live")
        elif t == "gap":
            self.gaps += 1
            self._track(frame["conv"])
            self._raise_want(frame["conv"], frame["to_seq"], urgent=True)
        else:
            self.events.append((time.monotonic(), frame))
            if t == "conv" and not frame.get("removed"):
                new = frame["conv"] not in self.contig
                self._track(frame["conv"])
                self._raise_want(frame["conv"], frame["last_seq"], urgent=new)

    # -- the client's part of the guarantee -----------------------------------------

    def _track(self, conv: str) -> None:
        self.contig.setdefault(conv, 0)
        self.held.setdefault(conv, {})
        self.want.setdefault(conv, 0)

    def _apply(self, msg: dict[str, Any], source: str) -> None:
        conv, seq = msg["conv"], msg["seq"]
        self._track(conv)
        key = (msg["from"], msg["cmid"])
        held = self.held[conv]
        if source == "live":
            self.arrivals.setdefault(conv, []).append(seq)
        if seq in held:  # a repeat: drop it
            self.repeats += 1
            if held[seq] != key:
                self.conflicts.append(f"{self.label}: {conv} seq {seq} was {held[seq]}, now {key}")
            return
        held[seq] = key
        if source == "history":
            self.fetched += 1
        mark = self.contig[conv]
        while mark + 1 in held:
            mark += 1
        self.contig[conv] = mark
        self._raise_want(conv, seq, urgent=False)

    def own(self, conv: str, seq: int, cmid: str) -> None:
        """This device's send was stored as ``seq``: it holds it (no msg event comes)."""
        self._apply({"conv": conv, "seq": seq, "from": self.user, "cmid": cmid}, "own")

    def _raise_want(self, conv: str, seq: int, *, urgent: bool) -> None:
        if seq > self.want[conv]:
            self.want[conv] = seq
        mark = self.contig[conv]
        if mark >= self.want[conv]:
            self._hole_since.pop(conv, None)
            self._urgent.discard(conv)
            return
        lowest = self._hole_since.get(conv)
        if lowest is None or lowest[0] != mark + 1:  # a new lowest hole: its grace starts now
            self._hole_since[conv] = (mark + 1, time.monotonic())
        if urgent:
            self._urgent.add(conv)
        self._kick.set()

    def holes(self) -> dict[str, tuple[int, int]]:
        return {c: (self.contig[c], w) for c, w in self.want.items() if self.contig[c] < w}

    async def _fill_loop(self) -> None:
        """Fetch a conversation's lowest hole once it is urgent (gap, welcome) or has
        outlived the grace: a message from another node may simply be late."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self._hole_since:
                now = time.monotonic()
                due = [conv for conv, (_, since) in self._hole_since.items()
                       if conv in self._urgent or now - since >= HOLE_GRACE_S]
                if not due:
                    await asyncio.sleep(0.05)
                    continue
                try:
                    for conv in due:
                        if not await self._fill_lowest(conv):
                            await asyncio.sleep(0.2)  # a bad page was recorded: do not spin
                except (ConnectionLost, TimeoutError):
                    await self.online.wait()  # go on once connected again

    async def _fill_lowest(self, conv: str) -> bool:
        mark, held = self.contig[conv], self.held[conv]
        if mark >= self.want[conv]:
            return True
        above = [s for s in held if s > mark]
        end = min(above) - 1 if above else self.want[conv]
        before, limit = end + 1, min(100, end - mark)
        reply = await self.request("history", conv=conv, before=before, limit=limit)
        self.history_calls += 1
        if reply["t"] != "ok":
            self.conflicts.append(f"{self.label}: history of {conv} refused: {reply}")
            return False
        for message in reply["messages"]:
            self._apply(message, "history")
        got = [message["seq"] for message in reply["messages"]]
        if got != list(range(before - limit, before)):  # small messages: pages are never cut short
            self.conflicts.append(f"{self.label}: history of {conv} before {before} limit {limit} gave {got}")
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


# -- a cluster of nodes for one test ---------------------------------------------------


class Rig:
    """The nodes and devices of one test: its own Redis, its own PostgreSQL schema."""

    def __init__(self, workdir: Path, redis_url: str, dsn: str) -> None:
        self.workdir = workdir
        self.redis_url = redis_url
        self.dsn = dsn
        self.nodes: list[NodeProcess] = []
        self.devices: list[Device] = []

    async def start(self, count: int, *, dm_policy: str = "everyone", redis_url: str | None = None,
                    ttl_s: float = PRESENCE_TTL_S) -> list[NodeProcess]:
        """Start ``count`` nodes at once (each migrates the schema at start: they race)."""
        new = [NodeProcess(f"node{len(self.nodes) + i}", self.workdir,
                           node_args(redis_url or self.redis_url, self.dsn, dm_policy=dm_policy, ttl_s=ttl_s))
               for i in range(count)]
        self.nodes += new
        for node in new:
            node.spawn()
        await asyncio.gather(*(node.ready() for node in new))
        return new

    def device(self, user: str, label: str | None = None) -> Device:
        device = Device(user, label)
        self.devices.append(device)
        return device

    async def join(self, node: NodeProcess, user: str, label: str | None = None) -> Device:
        """A device of ``user`` connected to ``node``."""
        device = self.device(user, label)
        await device.connect(node.url)
        return device

    def errors(self) -> dict[str, list[str]]:
        return {node.name: node.errors() for node in self.nodes if node.errors()}

    async def close(self) -> None:
        await asyncio.gather(*(device.close() for device in self.devices))
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            await asyncio.to_thread(node.wait_stopped)


# -- traffic with an expected outcome ---------------------------------------------------


async def stored(device: Device, conv: str) -> dict[int, tuple[str, str]]:
    """What the store holds for ``conv`` (paged with ``history``; not applied to the device)."""
    out: dict[int, tuple[str, str]] = {}
    before: int | None = None
    for _ in range(1000):
        fields: dict[str, Any] = {"conv": conv, "limit": 100}
        if before is not None:
            fields["before"] = before
        page = (await device.ok("history", **fields))["messages"]
        for message in page:
            out[message["seq"]] = (message["from"], message["cmid"])
        if not page or page[0]["seq"] == 1:
            return out
        before = page[0]["seq"]
    raise AssertionError(f"history of {conv} did not end")


class Traffic:
    """Devices sending in their groups and DMs until stopped, every ack recorded.

    A send is retried with the same ``cmid`` until acknowledged (SPEC section 10),
    also across a reconnect to another node. A device whose connection ends is
    reconnected by ``reconnect_url`` (after ``hold_back[device]`` is set, if given),
    resuming from its contiguous marks.
    """

    def __init__(self, devices: list[Device], members: dict[str, list[str]], *,
                 reconnect_url: Callable[[Device], str], interval_s: float, seed: int = 5) -> None:
        import random

        self.devices = devices
        self.members = members
        self.reconnect_url = reconnect_url
        self.interval_s = interval_s
        self.rng = random.Random(seed)
        self.convs_of: dict[str, list[str]] = {}
        for conv, users in members.items():
            for user in users:
                self.convs_of.setdefault(user, []).append(conv)
        self.acked: dict[str, dict[int, tuple[str, str]]] = {conv: {} for conv in members}
        self._seq_of: dict[tuple[str, str, str], int] = {}
        self.acked_at: dict[tuple[str, int], tuple[float, str]] = {}  # when, and through which node
        self.quiet: set[str] = set()  # conversations that take no new messages from now on
        self.hold_back: dict[Device, asyncio.Event] = {}
        self.problems: list[str] = []
        self.sends = 0
        self.retried = 0  # sends acknowledged only on a later attempt, with the same cmid
        self.unacked = 0
        self.reconnects = 0
        self._sending = False
        self._senders: list[asyncio.Task[None]] = []
        self._keepers: list[asyncio.Task[None]] = []

    def record(self, device: Device, conv: str, seq: int, cmid: str) -> None:
        key = (device.user, cmid)
        before = self.acked[conv].get(seq)
        if before is not None and before != key:
            self.problems.append(f"{conv} seq {seq} acknowledged for {before} and for {key}")
        first = self._seq_of.setdefault((conv, *key), seq)
        if first != seq:
            self.problems.append(f"{key} in {conv} acknowledged as seq {first} and as seq {seq}: doubled")
        self.acked[conv][seq] = key
        self.acked_at[(conv, seq)] = (time.monotonic(), device.url)
        device.own(conv, seq, cmid)

    async def send(self, device: Device, conv: str, cmid: str, *, within_s: float = 25.0) -> None:
        """Send one message and retry it, same cmid, until it is acknowledged."""
        deadline = time.monotonic() + within_s
        attempts = 0
        self.sends += 1
        while time.monotonic() < deadline:
            if not device.online.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(device.online.wait(), max(0.01, deadline - time.monotonic()))
                continue
            attempts += 1
            try:
                reply = await device.request("send", conv=conv, cmid=cmid, text=f"text of {cmid}")
            except (ConnectionLost, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            if reply["t"] == "ok":
                assert reply["conv"] == conv
                self.record(device, conv, reply["seq"], cmid)
                if attempts > 1:
                    self.retried += 1
                return
            if reply["code"] in ("unavailable", "internal"):
                await asyncio.sleep(0.1)
                continue
            self.problems.append(f"{device.label}: send {cmid} to {conv} refused: {reply}")
            return
        self.unacked += 1
        self.problems.append(f"{device.label}: send {cmid} to {conv} never acknowledged")

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sending = True
        for device in self.devices:
            delay = self.rng.uniform(0, self.interval_s)
            self._senders.append(loop.create_task(self._sender(device, delay, self.rng.random())))
            self._keepers.append(loop.create_task(self._keep_connected(device)))

    async def _sender(self, device: Device, delay: float, seed: float) -> None:
        import random

        rng = random.Random(seed)
        await asyncio.sleep(delay)
        count = 0
        while self._sending:
            choices = [c for c in self.convs_of.get(device.user, ()) if c not in self.quiet]
            if choices:
                count += 1
                await self.send(device, rng.choice(choices), f"{device.label}.{count}")
            await asyncio.sleep(rng.uniform(0.5, 1.5) * self.interval_s)

    async def _keep_connected(self, device: Device) -> None:
        while True:
            await device.lost.wait()
            if device._closed:
                return
            hold = self.hold_back.get(device)
            if hold is not None:
                await hold.wait()
            deadline = time.monotonic() + 15
            while True:
                url = self.reconnect_url(device)
                try:
                    await device.connect(url, timeout=5)
                    self.reconnects += 1
                    break
                except Exception as exc:  # refused, reset, timed out: try again
                    if time.monotonic() > deadline:
                        self.problems.append(f"{device.label}: cannot reconnect: {exc!r}")
                        return
                    await asyncio.sleep(0.1)

    async def stop_sending(self) -> None:
        """No new messages; sends in flight go on until acknowledged."""
        self._sending = False
        await asyncio.gather(*self._senders)

    async def close(self) -> None:
        for task in self._keepers:
            task.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)

    def missing(self, device: Device) -> int:
        held = device.held
        return sum(1 for conv in self.convs_of.get(device.user, ())
                   for seq in self.acked[conv] if seq not in held.get(conv, {}))

    async def settle(self, timeout: float) -> float:
        """Wait, without helping, until every device holds every acknowledged message of its
        conversations and has no hole left; return how long that took."""

        def done() -> bool:
            return all(d.connected and not d.holes() and not self.missing(d) for d in self.devices)

        def report() -> str:
            now = time.monotonic()
            lagging = []
            for d in self.devices:
                if d.connected and not d.holes() and not self.missing(d):
                    continue
                lost = []
                for conv in self.convs_of.get(d.user, ()):
                    for seq in self.acked[conv]:
                        if seq not in d.held.get(conv, {}):
                            when, via = self.acked_at[(conv, seq)]
                            lost.append((conv, seq, self.acked[conv][seq], f"acked {now - when:.2f} s ago",
                                         f"via {via}", f"device contig {d.contig.get(conv)}"))
                lagging.append((d.label, d.url, d.connected, d.holes(), lost[:3]))
            return f"{len(lagging)} devices lag: {lagging[:10]}"

        return await until(done, timeout, report)

    async def verify(self) -> dict[str, int]:
        """Every acknowledged message reached every member device exactly once, in order.

        The store is read once per conversation (through a member's device, without
        touching its state) and must hold exactly the acknowledged messages, seq 1..N;
        each member device must hold exactly those, each (conv, seq) once.
        """
        assert not self.problems, self.problems[:10]
        by_user: dict[str, list[Device]] = {}
        for device in self.devices:
            by_user.setdefault(device.user, []).append(device)
        expected = delivered = 0
        for conv, users in self.members.items():
            reader = by_user[users[0]][0]
            store = await stored(reader, conv)
            assert sorted(store) == list(range(1, len(store) + 1)), f"{conv}: seqs not gap-free"
            assert store == self.acked[conv], f"{conv}: the store and the acks differ"
            for user in users:
                for device in by_user.get(user, ()):
                    held = device.held.get(conv, {})
                    assert held == store, (
                        f"{device.label} in {conv}: missing {sorted(set(store) - set(held))[:10]}, "
                        f"extra {sorted(set(held) - set(store))[:10]}")
                    assert device.contig[conv] == len(store)
                    expected += len(store)
                    delivered += len(held)
        conflicts = [c for d in self.devices for c in d.conflicts]
        assert not conflicts, conflicts[:10]
        assert delivered == expected
        arrived = [seqs for d in self.devices for seqs in d.arrivals.values()]
        return {
            "devices": len(self.devices),
            "conversations": len(self.members),
            "messages": sum(len(a) for a in self.acked.values()),
            "deliveries": delivered,
            "retried_sends": self.retried,
            "reconnects": self.reconnects,
            "owed_on_resume": sum(d.resumed for d in self.devices),
            "repeats_dropped": sum(d.repeats for d in self.devices),
            "gap_events": sum(d.gaps for d in self.devices),
            "history_calls": sum(d.history_calls for d in self.devices),
            "filled_by_history": sum(d.fetched for d in self.devices),
            "out_of_order_arrivals": sum(1 for seqs in arrived for a, b in itertools.pairwise(seqs) if b < a),
        }


class World:
    """Users spread over nodes, in groups and DMs: user ``i``'s device is on node ``i % n``,
    and the first ``dual`` users have a second device on the next node."""

    def __init__(self) -> None:
        self.devices: list[Device] = []
        self.home: dict[Device, NodeProcess] = {}
        self.first: dict[str, Device] = {}
        self.members: dict[str, list[str]] = {}
        self.opened: list[tuple[Device, str, int, str]] = []  # the DMs' first messages

    @classmethod
    async def build(cls, rig: Rig, nodes: list[NodeProcess], *, users: int, dual: int,
                    group_size: int) -> World:
        world = cls()
        names = [f"u{i:03}" for i in range(users)]
        for i, name in enumerate(names):
            world._add(rig, name, name, nodes[i % len(nodes)])
        for i, name in enumerate(names[:dual]):
            world._add(rig, name, f"{name}-2", nodes[(i + 1) % len(nodes)])
        await gather_limited((device.connect(world.home[device].url) for device in world.devices), 50)

        async def group(index: int) -> None:
            users_in = names[index * group_size:(index + 1) * group_size]
            reply = await world.first[users_in[0]].ok("group.create", members=users_in[1:], title=f"g{index}")
            world.members[reply["conv"]] = users_in

        async def dm(index: int) -> None:
            a, b = names[index], names[index + users // 2]
            reply = await world.first[a].ok("send", to=b, cmid="open", text=f"hi {b}")
            world.members[reply["conv"]] = [a, b]
            world.opened.append((world.first[a], reply["conv"], reply["seq"], "open"))

        await gather_limited([*(group(g) for g in range(users // group_size)),
                              *(dm(i) for i in range(users // 2))], 50)
        by_user: dict[str, list[str]] = {}
        for conv, users_in in world.members.items():
            for user in users_in:
                by_user.setdefault(user, []).append(conv)

        def known() -> bool:
            return all(conv in d.contig for d in world.devices for conv in by_user[d.user])

        await until(known, 15, "every device heard of its conversations")
        return world

    def _add(self, rig: Rig, user: str, label: str, node: NodeProcess) -> None:
        device = rig.device(user, label)
        self.devices.append(device)
        self.home[device] = node
        self.first.setdefault(user, device)
