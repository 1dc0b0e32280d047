"""Starting and stopping each system's server process, pinned to the hub's core.

Clipwire runs as ``clipwire serve`` on a fresh SQLite file; the peers
(Socket.IO on Node, python-socketio, the bare relay) come from
``benchmarks.peers.start_peer``. A peer that cannot run here (no Node, no
node_modules, the peers package missing) is reported and left out.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .procinfo import taskset_prefix

SYSTEMS = ("clipwire", "socketio", "python-socketio", "relay")
PEERS = ("socketio", "python-socketio", "relay")
SECRET = "benchmark-secret-benchmark-secret-0123"
# A load test is one client sending for many: the DM policy is opened for the run (the issue
# asks for it) and the per-connection abuse limits are lifted (the generator's clients send
# far faster than a person). Settings a hub does not have are ignored.
OPEN_FOR_LOAD = {
    "CLIPWIRE_DM_POLICY": "everyone",
    "CLIPWIRE_RATE_SEND_PER_S": "1000000000",
    "CLIPWIRE_RATE_HISTORY_PER_S": "1000000000",
}


@dataclass
class Server:
    """One system under test: one process, or several nodes (``urls``, ``pids``) joined by Redis."""

    system: str
    url: str
    pid: int
    stopper: Callable[[], None]
    options: dict[str, Any] = field(default_factory=dict)  # what the client adapter needs
    pids: list[int] = field(default_factory=list)  # every process of the system (its nodes, Redis)

    def __post_init__(self) -> None:
        self.pids = self.pids or [self.pid]

    def stop(self) -> None:
        self.stopper()


def unavailable(system: str) -> str | None:
    """Why ``system`` cannot run here, or None when it can."""
    if system == "clipwire":
        return None
    if system not in PEERS:
        return f"unknown system {system!r} (known: {', '.join(SYSTEMS)})"
    try:
        from benchmarks.peers import start_peer  # noqa: F401
    except ImportError as exc:
        return f"benchmarks.peers is not importable ({exc})"
    if system == "socketio":
        from benchmarks.peers import ensure_installed

        try:
            ensure_installed()  # npm ci into peers/socketio the first time (the peers' own set-up)
        except Exception as exc:
            return str(exc).splitlines()[0]
    return None


def start(system: str, *, cpu: int | None, workdir: Path, clipwire_args: list[str] | None = None,
          nodes: int = 1, workers: int = 1) -> Server:
    """Start ``system``; with ``nodes`` > 1, that many processes on a private Redis of their own.

    ``workers`` > 1 runs Clipwire as ``clipwire serve --workers N`` (one port,
    SO_REUSEPORT) on a private Redis; the peers ignore it.
    """
    if nodes > 1:
        return _start_nodes(system, nodes, cpu, workdir, clipwire_args or [])
    if system == "clipwire" and workers > 1:
        return _start_workers(workers, cpu, workdir, clipwire_args or [])
    if system == "clipwire":
        return _start_clipwire(cpu, workdir, clipwire_args or [])
    from benchmarks.peers import start_peer

    peer = start_peer(system, port=0, cpu=cpu)  # type: ignore[arg-type]
    url = str(peer.url)
    if system == "relay" and not url.rstrip("/").endswith("/ws"):
        url = url.rstrip("/") + "/ws"

    def stop() -> None:
        peer.stop()

    return Server(system, url, int(peer.pid), stop)


def _start_nodes(system: str, nodes: int, cpu: int | None, workdir: Path, extra: list[str]) -> Server:
    """Several processes of ``system`` fanning out through one Redis, all on the hub's core.

    Clipwire's nodes share one SQLite file (``--store-args`` may point them at
    PostgreSQL instead); the Socket.IO peers use their Redis adapter.
    """
    from .services import LocalRedis

    if system == "relay":
        raise RuntimeError("the bare relay is a single process and has no multi-node mode")
    redis = LocalRedis(cpu)
    redis.start()
    started: list[Server] = []
    try:
        for i in range(nodes):
            if system == "clipwire":
                started.append(_start_clipwire(cpu, workdir, ["--redis-url", redis.url, *extra],
                                               node=f"node{i}", fresh=i == 0))
            else:
                from benchmarks.peers import start_peer

                peer = start_peer(system, port=0, cpu=cpu, redis=redis.url)  # type: ignore[arg-type]
                started.append(Server(system, str(peer.url), int(peer.pid), peer.stop))
    except BaseException:
        for server in started:
            server.stop()
        redis.stop()
        raise
    assert redis.proc is not None

    def stop() -> None:
        for server in started:
            server.stop()
        redis.stop()

    urls = [s.url for s in started]
    first = started[0]
    return Server(system, first.url, first.pid, stop, {**first.options, "urls": urls},
                  pids=[*(s.pid for s in started), redis.proc.pid])


def _start_workers(workers: int, cpu: int | None, workdir: Path, extra: list[str]) -> Server:
    from .services import LocalRedis

    redis = LocalRedis(cpu)
    redis.start()
    try:
        server = _start_clipwire(cpu, workdir, ["--workers", str(workers), "--redis-url", redis.url, *extra])
    except BaseException:
        redis.stop()
        raise
    assert redis.proc is not None

    def stop() -> None:
        server.stop()
        redis.stop()

    return Server("clipwire", server.url, server.pid, stop, {**server.options, "workers": workers},
                  pids=[server.pid, redis.proc.pid])


def _start_clipwire(cpu: int | None, workdir: Path, extra: list[str], node: str = "clipwire",
                    fresh: bool = True) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "clipwire.db"
    if fresh:
        for suffix in ("", "-wal", "-shm", "-lock"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    log_path = workdir / f"{node}.log"
    env = {**os.environ, "CLIPWIRE_SECRET": SECRET, "CLIPWIRE_LOG_LEVEL": "WARNING", **OPEN_FOR_LOAD}
    cmd = [*taskset_prefix(cpu), sys.executable, "-m", "clipwire.server", "serve", "--port", "0",
           "--db", str(db), *extra]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    url = None
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            found = re.search(r"(ws://\S+/ws)", line)
            url = found.group(1) if found else None
    if url is None:
        proc.kill()
        proc.wait(5)
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"clipwire serve did not start: {tail}")

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()

    return Server("clipwire", url, proc.pid, stop, {"secret": SECRET})
