"""Where the tests find Redis and PostgreSQL, and what happens when they are absent.

``REDIS_URL`` and ``DATABASE_URL`` name them (defaults: the local ones). In CI
(``CI=true``) a missing service fails the test: .ci/run starts them first. On
a developer's machine the test is skipped with one line saying how to run it.
"""

from __future__ import annotations

import os
import socket
from contextlib import AbstractAsyncContextManager
from urllib.parse import urlsplit

import pytest

from benchmarks.services import LocalRedis, pg_schema

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://127.0.0.1:5432/test")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 1):
            return True
    except OSError:
        return False


def require(service: str) -> str:
    """The URL of ``service`` ("redis" or "postgres"), or skip/fail if it is not running."""
    url, port, how = {
        "redis": (REDIS_URL, 6379, "start Redis or set REDIS_URL"),
        "postgres": (DATABASE_URL, 5432, "start PostgreSQL or set DATABASE_URL"),
    }[service]
    if _reachable(url, port):
        return url
    message = f"{service} is not reachable at {url}: {how} (bash .ci/run starts both)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def fresh_schema(database_url: str) -> AbstractAsyncContextManager[str]:
    """A DSN whose search_path is a new, empty schema, dropped afterwards."""
    return pg_schema(database_url, prefix="t")


class PrivateRedis(LocalRedis):
    """A redis-server of the test's own on a free port, so a test may kill and restart it."""

    def __init__(self) -> None:
        import shutil

        if shutil.which("redis-server") is None:
            require("redis")  # same message and CI rule as for a missing service
        super().__init__()
