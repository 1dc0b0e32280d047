"""Fixtures for the SDK tests: clients that are closed after the test, fault proxies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from faultproxy import FaultProxy
from sdkhelp import ProxyFactory, SdkFactory
from wire import token

from clipwire.client import Client, connect

# Fast reconnects and short waits keep the suite quick; production defaults are slower.
FAST: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.4, "request_timeout": 5.0,
                        "hole_grace": 0.1, "connect_timeout": 3.0}


@pytest.fixture
async def sdk() -> AsyncIterator[SdkFactory]:
    """``await sdk(url, "alice", **options)``: a connected client, closed after the test."""
    clients: list[Client] = []

    async def open_as(url: str, user: str, **options: Any) -> Client:
        options = {**FAST, **options}
        if "token" not in options and "token_provider" not in options:
            options["token"] = token(user)
        client = await connect(url, **options)
        clients.append(client)
        return client

    yield open_as
    for client in clients:
        await client.aclose()


@pytest.fixture
async def proxy_factory() -> AsyncIterator[ProxyFactory]:
    """``await proxy_factory(hub_port)``: a fault-injecting relay in front of a hub."""
    proxies: list[FaultProxy] = []

    async def start(port: int) -> FaultProxy:
        proxy = await FaultProxy(port).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.close()
