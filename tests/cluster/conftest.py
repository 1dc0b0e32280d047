"""Fixtures for the multi-node tests: a private Redis, a fresh PostgreSQL schema, hub processes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from clusterhelp import Rig
from services import PrivateRedis, fresh_schema, require


@pytest.fixture
async def rig(request: pytest.FixtureRequest, tmp_path: Path,
              private_redis: PrivateRedis) -> AsyncIterator[Rig]:
    """Nodes on this test's own Redis and schema; devices closed, then nodes stopped, at the end.

    The nodes share a PostgreSQL schema, or one SQLite file where a test asks for
    ``sqlite`` (``pytest.mark.parametrize("rig", [...], indirect=True)``)."""
    async with contextlib.AsyncExitStack() as stack:
        if getattr(request, "param", "postgres") == "sqlite":
            dsn = str(tmp_path / "shared.db")
        else:
            dsn = await stack.enter_async_context(fresh_schema(require("postgres")))
        rig = Rig(tmp_path, private_redis.url, dsn)
        try:
            yield rig
        finally:
            await rig.close()
    # The hubs logged no error, their shutdown included (a failed presence update, say).
    assert rig.errors() == {}, rig.errors()
