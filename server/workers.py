"""``clipwire serve --workers N``: N hub processes sharing one port.

Each worker is the same ``clipwire serve`` with ``--workers 1 --reuse-port``,
so the kernel spreads new connections across them (SO_REUSEPORT), and they
meet through the broker like nodes on different machines. The supervisor
restarts a worker that dies and stops them all on SIGINT or SIGTERM. The first
worker starts alone: if it cannot start (a wrong setting, the port taken, Redis
or the store away), it has printed why on the shared stderr once, and the
supervisor exits with its status. Once the hub has served, a worker that dies is
restarted, and one that then cannot start (Redis away for a moment) is tried
again after a delay that doubles up to ``RESTART_MAX_DELAY_S``: one bad moment
must not take down the workers that still serve.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from .config import ConfigError, HubConfig
from .startup import EXIT_STARTUP

RESTART_DELAY_S = 1.0
RESTART_MAX_DELAY_S = 30.0
HEALTHY_AFTER_S = 60.0  # a worker that ran this long restarts after the shortest delay again
#: The exit statuses of a worker that could not start: a wrong setting (2), or
#: what the settings name could not be used (EXIT_STARTUP). Restarting cannot help.
_COULD_NOT_START = (2, EXIT_STARTUP)


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def supervise(config: HubConfig, argv: list[str]) -> int:
    """Run ``config.workers`` workers until told to stop; returns the exit status."""
    if not config.redis_url:
        raise ConfigError("--workers above 1 needs --redis-url: the workers meet through Redis")
    port = config.port or free_port(config.host)
    env = {**os.environ, "CLIPWIRE_WORKERS": "1", "CLIPWIRE_REUSE_PORT": "true",
           "CLIPWIRE_PORT": str(port)}
    command = [sys.executable, "-m", "clipwire.server", "serve", *_without_port(argv)]
    workers: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    workers.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
    _wait_listening(config.host, port, workers)
    if workers[0].poll() in _COULD_NOT_START:
        return workers[0].returncode
    for _ in range(config.workers - 1):
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
    print(f"Clipwire hub on ws://{config.host}:{port}/ws with {config.workers} workers "
          f"(health: http://{config.host}:{port}/healthz)", flush=True)
    started = [time.monotonic()] * len(workers)
    delays = [RESTART_DELAY_S] * len(workers)
    restart_at: list[float | None] = [None] * len(workers)
    while not stopping:
        time.sleep(0.2)
        now = time.monotonic()
        for index, worker in enumerate(workers):
            if stopping:
                break
            due = restart_at[index]
            if due is not None:
                if now >= due:
                    restart_at[index] = None
                    started[index] = now
                    workers[index] = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
                continue
            if worker.poll() is None:
                continue
            if now - started[index] >= HEALTHY_AFTER_S:
                delays[index] = RESTART_DELAY_S
            print(f"worker {worker.pid} exited with {worker.returncode}; restarting in "
                  f"{delays[index]:.0f} s", file=sys.stderr, flush=True)
            restart_at[index] = now + delays[index]
            delays[index] = min(RESTART_MAX_DELAY_S, delays[index] * 2)
    for worker in workers:
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
    return 0


def _wait_listening(host: str, port: int, workers: list[subprocess.Popen[bytes]],
                    timeout_s: float = 30.0) -> None:
    """Announce the hub only once a worker accepts connections (clients start on that line)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(worker.poll() is not None for worker in workers):
            return  # a worker failed to start: the caller decides
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)


def _without_port(argv: list[str]) -> list[str]:
    """The serve flags minus --port and --workers, which the supervisor sets itself."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--port", "--workers"):
            skip = True
            continue
        if arg.startswith(("--port=", "--workers=")):
            continue
        out.append(arg)
    return out
