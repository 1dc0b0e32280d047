"""Shared fixtures: a real hub on a loopback port with a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from services import PrivateRedis, require
from wire import SECRET, TRANSPORT, Bystanders, Connect, Dial, HubFactory, HubProcess, RawClient, token

from clipwire.server import ClipwireServer, HubConfig

#: What an embedding application hands ``ClipwireServer`` besides the settings.
EMBEDDED = ("store", "policy", "broker", "resolver", "listeners")


@pytest.fixture
async def hub_factory(tmp_path: Path) -> AsyncIterator[HubFactory]:
    """Start hubs with custom settings, and the parts of ``EMBEDDED`` an embedding app
    passes (``policy=``, ``broker=`` ...); each hub is closed at the end of the test."""
    started: list[ClipwireServer] = []

    async def start(**settings: Any) -> ClipwireServer:
        parts = {name: settings.pop(name) for name in EMBEDDED if name in settings}
        # Open DMs unless a test asks for the friends policy: most tests are about
        # messaging, and tests/server/test_social*.py cover the policy itself.
        # Rate limits high enough for tests that send in bulk; tests/server/test_rate_retry.py
        # sets its own. The transport is CLIPWIRE_TRANSPORT's unless a test chooses one.
        values: dict[str, Any] = {"port": 0, "db": str(tmp_path / "hub.db"), "secret": SECRET,
                                  "dm_policy": "everyone", "rate_send_per_s": 100_000.0,
                                  "rate_history_per_s": 100_000.0, "rate_friend_per_s": 100_000.0,
                                  "rate_presence_per_s": 100_000.0, "rate_social_per_s": 100_000.0,
                                  "transport": TRANSPORT}
        values.update(settings)
        server = ClipwireServer(HubConfig(**values), **parts)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        if server._server is not None:
            await server.close()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A Redis of this test's own (the test may kill it), stopped at the end."""
    require("redis")
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
async def hub(hub_factory: HubFactory) -> ClipwireServer:
    return await hub_factory()


@pytest.fixture
async def connect(hub: ClipwireServer) -> AsyncIterator[Connect]:
    """``await connect("alice")``: a client on ``hub`` that has said hello as that user."""
    clients: list[RawClient] = []

    async def open_as(user: str, **hello: Any) -> RawClient:
        client = await RawClient.open(hub.url)
        clients.append(client)
        await client.hello(token(user), **hello)
        return client

    yield open_as
    for client in clients:
        await client.close()


@pytest.fixture
async def bystanders(connect: Connect) -> Bystanders:
    """Two users on ``hub`` with two stored messages; ``await bystanders.still_served()``."""
    return await Bystanders.start(connect)


@pytest.fixture
async def dial(hub_factory: HubFactory) -> AsyncIterator[Dial]:
    """``await dial(url, "alice")``: a client on any hub (``user=None``: no hello yet).

    Extra keyword arguments go to the hello; ``ws_options`` to ``websockets.connect``.
    Clients are closed before the hubs of ``hub_factory`` are.
    """
    clients: list[RawClient] = []

    async def open_on(url: str, user: str | None = None, *, ws_options: dict[str, Any] | None = None,
                      **hello: Any) -> RawClient:
        client = await RawClient.open(url, **(ws_options or {}))
        clients.append(client)
        if user is not None:
            await client.hello(token(user), **hello)
        return client

    yield open_on
    for client in clients:
        await client.close()


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[HubProcess]:
    """A hub in its own process (``clipwire serve``), for kill-and-restart tests."""
    proc = HubProcess(tmp_path / "proc.db")
    yield proc
    proc.stop()
