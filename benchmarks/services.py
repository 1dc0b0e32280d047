"""The services a multi-node run needs of its own: a private Redis and a fresh PostgreSQL schema.

Each run starts its own ``redis-server`` on a free loopback port (so it may
be killed, restarted empty, or pinned to the hub's core without touching a
Redis anyone else uses) and writes into a PostgreSQL schema it drops after.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from .procinfo import taskset_prefix

REDIS_MISSING = ("redis-server is not installed: install Redis (`apt-get install redis-server`, "
                 "or `bash scripts/services` from the repository root)")


class RedisControl(Protocol):
    """What a scenario needs of a Redis server of its own (``tests/services.PrivateRedis``)."""

    url: str
    port: int

    def start(self) -> None: ...

    def stop(self) -> None: ...


class LocalRedis:
    """A redis-server of the run's own on a free loopback port, optionally pinned to ``cpu``."""

    def __init__(self, cpu: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(REDIS_MISSING)
        self.binary = binary
        self.cpu = cpu
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*taskset_prefix(self.cpu), self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@asynccontextmanager
async def pg_schema(database_url: str, prefix: str = "faults") -> AsyncIterator[str]:
    """A DSN whose search_path is a new, empty schema, dropped afterwards."""
    import asyncpg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in database_url else "?"
        yield f"{database_url}{sep}search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
