"""Helpers for the multi-node tests: real hub processes, a Redis link that can stall,
and devices that keep the client's part of the delivery guarantee (SPEC section 10).

``Device`` (benchmarks/faults.py, shared with the fault runs) is written from the
protocol, not from the SDK, and follows only the rules the SPEC gives a client: it
drops repeats of ``(conv, seq)``, keeps its highest contiguous ``seq`` per
conversation and resumes with exactly that, fills
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

from wire import SECRET

from benchmarks.faults import ClientTiming, ConnectionLost, Device, gather_limited, until

PRESENCE_TTL_S = 1.5
# The documented bound (SCALING.md, RedisPresence): a dead node's users are offline within ttl * 4/3.
OFFLINE_BOUND_S = PRESENCE_TTL_S * 4 / 3
# The devices' patience: requests wait 10 s, keepalive pings as websockets' defaults.
TIMING = ClientTiming(request_timeout_s=10.0, open_timeout_s=10.0, ping_interval_s=20.0,
                      ping_timeout_s=20.0)


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
        device = Device(user, label, SECRET, TIMING)
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
            if device.closed:
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
                    held = device.holding(conv)
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
