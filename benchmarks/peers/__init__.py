"""The peers Clipwire is measured against, each started as its own process.

Three servers implement the same relay minimum (dm, join + room, share; no
persistence, no message acknowledgement) so one benchmark run can put Clipwire
beside them:

- ``"socketio"``: the reference Socket.IO 4 server on Node.js (``socketio/server.js``),
- ``"python-socketio"``: the same events on python-socketio + uvicorn + uvloop,
- ``"relay"``: a bare msgpack relay on ``websockets`` + uvloop, the Python floor.

Each prints ``READY <port>`` once it listens; :func:`start_peer` waits for that
line, so callers may pass ``port=0`` and read :attr:`PeerProcess.port`::

    peer = start_peer("socketio", cpu=1)
    try:
        client = await SocketIOClient.connect(peer.url, {"user": "alice"}, on_event)
    finally:
        peer.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from types import TracebackType
from typing import IO, Literal

PeerKind = Literal["socketio", "python-socketio", "relay"]
PEER_KINDS: tuple[PeerKind, ...] = ("socketio", "python-socketio", "relay")

PEERS_DIR = Path(__file__).resolve().parent
SOCKETIO_DIR = PEERS_DIR / "socketio"
REPO_ROOT = PEERS_DIR.parent.parent
MIN_NODE_MAJOR = 18

_READY = re.compile(rb"^READY (\d+)\s*$")


class PeerUnavailable(RuntimeError):
    """A peer cannot run here (e.g. Node.js or npm missing); the message says what to install."""


class PeerStartError(RuntimeError):
    """A peer process exited or stayed silent instead of printing ``READY <port>``."""


def _node_version(node: str) -> tuple[int, ...]:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    return tuple(int(p) for p in re.findall(r"\d+", out)[:3])


def node_binary() -> str:
    """Path of a Node.js new enough for socket.io 4.8, or :class:`PeerUnavailable`."""
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable(
            "the Socket.IO peer needs Node.js >= 18 and npm on PATH (e.g. `apt-get install nodejs npm`)"
        )
    version = _node_version(node)
    if not version or version[0] < MIN_NODE_MAJOR:
        raise PeerUnavailable(f"the Socket.IO peer needs Node.js >= {MIN_NODE_MAJOR}, found {version}")
    return node


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """Serialize concurrent installs (two benchmark processes, or tests) on one machine."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Windows
        yield
        return
    path = Path(tempfile.gettempdir()) / f"clipwire-bench-npm-{os.getuid()}.lock"
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _installed(directory: Path) -> bool:
    # npm ci writes node_modules/.package-lock.json; older than the lockfile means stale.
    hidden = directory / "node_modules" / ".package-lock.json"
    lock = directory / "package-lock.json"
    return hidden.is_file() and hidden.stat().st_mtime >= lock.stat().st_mtime


def ensure_installed(*, timeout: float = 300.0) -> Path:
    """Run ``npm ci`` in ``socketio/`` unless its node_modules matches the lockfile; returns the dir.

    Raises :class:`PeerUnavailable` when node or npm is missing and
    :class:`PeerStartError` (with npm's output) when the install fails.
    """
    node_binary()
    if _installed(SOCKETIO_DIR):
        return SOCKETIO_DIR
    npm = shutil.which("npm")
    if npm is None:
        raise PeerUnavailable("the Socket.IO peer needs npm on PATH (e.g. `apt-get install npm`)")
    with _install_lock():
        if _installed(SOCKETIO_DIR):
            return SOCKETIO_DIR
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=SOCKETIO_DIR, capture_output=True, text=True, timeout=timeout, check=False,
        )
        if result.returncode != 0 or not _installed(SOCKETIO_DIR):
            raise PeerStartError(
                f"`npm ci` in {SOCKETIO_DIR} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
    return SOCKETIO_DIR


class PeerProcess:
    """A running peer: ``url``, ``port``, ``pid``; ``stop()`` ends it (also as a context manager)."""

    def __init__(self, kind: PeerKind, proc: subprocess.Popen[bytes], host: str, port: int,
                 stderr_path: Path, reader: threading.Thread) -> None:
        self.kind = kind
        self.proc = proc
        self.host = host
        self.port = port
        self._stderr_path = stderr_path
        self._reader = reader

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        """``http://host:port`` for the Socket.IO peers, ``ws://host:port/ws`` for the relay."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.kind == "relay":
            return f"ws://{host}:{self.port}/ws"
        return f"http://{host}:{self.port}"

    def running(self) -> bool:
        return self.proc.poll() is None

    def stderr_text(self) -> str:
        """What the peer wrote on stderr so far (kept in a temp file until :meth:`stop`)."""
        try:
            return self._stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code (0 on a clean stop)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout)  # it closes stdout at EOF
        with contextlib.suppress(FileNotFoundError):
            self._stderr_path.unlink()
        return self.proc.returncode

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<PeerProcess {self.kind} pid={self.pid} url={self.url}>"


def peer_command(kind: PeerKind, *, host: str = "127.0.0.1", port: int = 0,
                 redis: str | None = None) -> list[str]:
    """The argv that starts ``kind`` (without the taskset prefix)."""
    args = ["--host", host, "--port", str(port)]
    if kind == "socketio":
        return [node_binary(), str(SOCKETIO_DIR / "server.js"), *args, *(["--redis", redis] if redis else [])]
    if kind == "python-socketio":
        return [sys.executable, "-m", "benchmarks.peers.python_socketio.server", *args,
                *(["--redis", redis] if redis else [])]
    if kind == "relay":
        if redis:
            raise ValueError("the relay is a single process: it has no --redis")
        return [sys.executable, "-m", "benchmarks.peers.relay", *args]
    raise ValueError(f"unknown peer kind {kind!r}; expected one of {PEER_KINDS}")


def _pin(cpu: int | str | None) -> list[str]:
    if cpu is None:
        return []
    taskset = shutil.which("taskset")
    if taskset is None:
        warnings.warn(f"taskset not found: the peer is not pinned to CPU {cpu}", RuntimeWarning, stacklevel=3)
        return []
    return [taskset, "-c", str(cpu)]


def _drain(stream: IO[bytes], lines: Queue[bytes]) -> None:
    # Hands lines to start_peer until READY, then keeps reading (and dropping) so a
    # chatty peer never blocks on a full stdout pipe; closes the pipe at EOF.
    with stream:
        for line in stream:
            lines.put(line)
            if _READY.match(line):
                break
        for _ in stream:
            pass
    lines.put(b"")


def start_peer(kind: PeerKind, *, port: int = 0, redis: str | None = None, cpu: int | str | None = None,
               host: str = "127.0.0.1", timeout: float = 60.0) -> PeerProcess:
    """Start ``kind`` and return once it printed ``READY <port>``.

    ``port=0`` lets the OS choose; ``redis`` (``redis://127.0.0.1:6379``) makes
    the Socket.IO peers fan out across processes; ``cpu`` pins the process with
    ``taskset -c`` (ignored with a warning where taskset is missing). The
    Node.js peer runs ``npm ci`` first if its node_modules is missing.
    """
    if kind == "socketio":
        ensure_installed()
    argv = _pin(cpu) + peer_command(kind, host=host, port=port, redis=redis)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    fd, name = tempfile.mkstemp(prefix=f"clipwire-peer-{kind}-", suffix=".stderr")
    stderr_path = Path(name)
    with os.fdopen(fd, "wb") as stderr:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=stderr)
    assert proc.stdout is not None
    lines: Queue[bytes] = Queue()
    reader = threading.Thread(target=_drain, args=(proc.stdout, lines), daemon=True,
                              name=f"peer-{kind}-{proc.pid}-stdout")
    reader.start()
    peer = PeerProcess(kind, proc, host, port, stderr_path, reader)
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except Empty:
            line = None
        found = _READY.match(line) if line else None
        if found:
            peer.port = int(found.group(1))
            return peer
        if line is None or line == b"":
            err = peer.stderr_text()
            status = "timed out" if line is None else f"exited with {proc.poll()}"
            peer.stop(timeout=2)
            raise PeerStartError(f"{kind} peer ({' '.join(argv)}) {status} before READY:\n{err}")


async def start_peer_async(kind: PeerKind, *, port: int = 0, redis: str | None = None,
                           cpu: int | str | None = None, host: str = "127.0.0.1",
                           timeout: float = 60.0) -> PeerProcess:
    """:func:`start_peer` in a thread, so an event loop keeps running while the peer starts."""
    return await asyncio.to_thread(start_peer, kind, port=port, redis=redis, cpu=cpu, host=host,
                                   timeout=timeout)


async def stop_peer_async(peer: PeerProcess, timeout: float = 5.0) -> int:
    """:meth:`PeerProcess.stop` in a thread."""
    return await asyncio.to_thread(peer.stop, timeout)


__all__ = [
    "PEER_KINDS",
    "PeerKind",
    "PeerProcess",
    "PeerStartError",
    "PeerUnavailable",
    "ensure_installed",
    "node_binary",
    "peer_command",
    "start_peer",
    "start_peer_async",
    "stop_peer_async",
]
