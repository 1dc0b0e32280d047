"""``clipwire serve --workers N``: N hub processes sharing one port.

Each worker is the same ``clipwire serve`` with ``--workers 1 --reuse-port``,
so the kernel spreads new connections across them (SO_REUSEPORT), and they
meet through the broker like nodes on different machines. The supervisor
restarts a worker that dies and stops them all on SIGINT or SIGTERM. A worker
that cannot start (a wrong setting, the port taken, Redis or the store away)
is not restarted: it has printed why on the shared stderr, and the supervisor
stops the others and exits with its status. The first worker starts alone, so
that such a line is printed once, not once per worker.
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
    status = 0

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
    while not stopping:
        time.sleep(0.2)
        for index, worker in enumerate(workers):
            if worker.poll() in _COULD_NOT_START and not stopping:
                stop(signal.SIGTERM, None)
                status = worker.returncode
                break
            if worker.poll() is not None and not stopping:
                print(f"worker {worker.pid} exited with {worker.returncode}; restarting",
                      file=sys.stderr, flush=True)
                time.sleep(RESTART_DELAY_S)
                workers[index] = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    for worker in workers:
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
    return status


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
