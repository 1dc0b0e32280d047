"""Fixtures for the backend hooks: a backend stand-in on loopback, and hubs that call it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hookhelp import Backend
from wire import HubFactory

from clipwire.server import ClipwireServer

Hooked = Callable[..., Awaitable[ClipwireServer]]


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    stand_in = Backend()
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def hooked(backend: Backend, hub_factory: HubFactory) -> AsyncIterator[Hooked]:
    """``await hooked(**settings)``: a hub sending webhooks to ``backend`` (short grace).

    Its hubs are closed, flushing their webhooks, while the backend still listens.
    """
    started: list[ClipwireServer] = []

    async def start(**settings: Any) -> ClipwireServer:
        server = await hub_factory(**backend.settings(**settings))
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        if server._server is not None:
            await server.close()
