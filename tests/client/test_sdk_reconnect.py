"""Reconnecting: a killed and restarted hub process, hub shutdown, token expiry."""

from __future__ import annotations

import asyncio

import pytest
from sdkhelp import HubFactory, ProxyFactory, SdkFactory, messages, next_event, quiet, texts
from wire import HubProcess, token

from clipwire.client import ClientClosed, Disconnected, Message, Reconnected
from clipwire.server import ClipwireServer


async def test_client_survives_hub_kill_and_restart(hub_process: HubProcess, sdk: SdkFactory,
                                                    proxy_factory: ProxyFactory) -> None:
    await asyncio.to_thread(hub_process.start)
    port = hub_process.port
    # Alice reaches the hub through a relay, so that she stays away until we let her back.
    proxy = await proxy_factory(port)
    alice = await sdk(proxy.url, "alice")
    bob = await sdk(hub_process.url, "bob")
    dm = (await alice.send_text("before the crash", to="bob")).conv
    assert texts(await messages(bob, 1)) == ["before the crash"]

    proxy.refuse = True
    hub_process.kill()
    # HubProcess.start() replaces proc without closing the old stdout pipe.
    assert hub_process.proc is not None and hub_process.proc.stdout is not None
    hub_process.proc.stdout.close()
    for client in (alice, bob):
        lost = await next_event(client, Disconnected)
        assert (lost.code, lost.reconnecting) == (1006, True)
    await asyncio.to_thread(hub_process.start, port)

    await next_event(bob, Reconnected, timeout=10)
    await bob.send_text("while you were away", conv=dm)
    await bob.send_text("and one more", to="alice")
    assert not alice.connected
    proxy.refuse = False

    await next_event(alice, Reconnected, timeout=10)
    got = await messages(alice, 2)
    assert [(m.seq, m.text, m.sender) for m in got] == [
        (2, "while you were away", "bob"), (3, "and one more", "bob")]
    assert not [e for e in await quiet(alice, 0.5) if isinstance(e, Message)]

    after = await alice.send_text("back again", to="bob")
    assert after.seq == 4
    assert [m.text for m in await messages(bob, 1)] == ["back again"]
    assert [m.seq for m in await bob.history(dm)] == [1, 2, 3, 4]


async def test_hub_shutdown_then_restart_on_the_same_port(hub_factory: HubFactory,
                                                          sdk: SdkFactory) -> None:
    hub = await hub_factory()
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    await alice.send_text("one", to="bob")
    await messages(bob, 1)
    port = hub.port
    await hub.close()
    lost = await next_event(alice, Disconnected)
    assert (lost.code, lost.reason, lost.reconnecting) == (1001, "hub shutting down", True)

    await hub_factory(port=port)
    await next_event(alice, Reconnected)
    await bob.wait_connected(5)
    await alice.send_text("two", to="bob")
    assert texts(await messages(bob, 1)) == ["two"]


async def test_token_provider_after_the_token_expires(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory(jwt_leeway_s=0)
    calls = 0

    async def fresh_token() -> str:
        nonlocal calls
        calls += 1
        return token("alice", ttl_s=3600)

    alice = await sdk(hub.url, "alice", token=token("alice", ttl_s=2), token_provider=fresh_token)
    bob = await sdk(hub.url, "bob")
    lost = await next_event(alice, Disconnected, timeout=5)
    assert (lost.code, lost.reason, lost.reconnecting) == (4001, "token expired", True)
    await next_event(alice, Reconnected)
    assert calls == 1
    await alice.send_text("still me", to="bob")
    assert (await messages(bob, 1))[0].sender == "alice"


async def test_expiry_without_a_provider_ends_the_client(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory(jwt_leeway_s=0)
    alice = await sdk(hub.url, "alice", token=token("alice", ttl_s=2))
    lost = await next_event(alice, Disconnected, timeout=5)
    assert (lost.code, lost.reconnecting) == (4001, False)
    with pytest.raises(ClientClosed) as ended:
        async for _ in alice:
            pass
    assert ended.value.code == 4001
    with pytest.raises(ClientClosed):
        await alice.ping()
    assert alice.closed and not alice.connected


async def test_reconnect_off_ends_on_the_first_drop(hub: ClipwireServer, sdk: SdkFactory,
                                                    proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(hub.port)
    alice = await sdk(proxy.url, "alice", reconnect=False)
    proxy.cut()
    lost = await next_event(alice, Disconnected)
    assert (lost.code, lost.reconnecting) == (1006, False)
    with pytest.raises(ClientClosed):
        await alice.send_text("nobody listens", to="bob")
    assert proxy.accepted == 1
