"""Exactly-once, in-order delivery: holes, repeats, reordering, a slow reader, resume.

The network faults come from a relay (``faultproxy``) between the client and a
real hub that drops, repeats or holds back whole frames, or cuts connections.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sdkhelp import HubFactory, ProxyFactory, SdkFactory, messages, next_event, quiet, seqs, texts

from clipwire.client import (
    ConnectionLost,
    ConversationChanged,
    Disconnected,
    Message,
    Reconnected,
    RequestTimeout,
)
from clipwire.server import ClipwireServer


def msg_seq(frame: dict[str, Any]) -> int | None:
    return frame["seq"] if frame["t"] == "msg" else None


def by_conv(got: list[Message]) -> dict[str, list[Message]]:
    out: dict[str, list[Message]] = {}
    for msg in got:
        out.setdefault(msg.conv, []).append(msg)
    return out


async def test_live_hole_is_filled_from_history(hub: ClipwireServer, sdk: SdkFactory,
                                                proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(hub.port)
    proxy.filter = lambda frame: "drop" if msg_seq(frame) in (2, 4, 5) else "pass"
    bob = await sdk(proxy.url, "bob")
    alice = await sdk(hub.url, "alice")
    for n in range(1, 8):
        await alice.send_text(f"m{n}", to="bob")
    got = await messages(bob, 7)
    assert seqs(got) == [1, 2, 3, 4, 5, 6, 7]
    assert texts(got) == [f"m{n}" for n in range(1, 8)]
    assert not [e for e in await quiet(bob) if isinstance(e, Message)]


async def test_repeated_frames_are_delivered_once(hub: ClipwireServer, sdk: SdkFactory,
                                                  proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(hub.port)
    proxy.filter = lambda frame: "dup" if frame["t"] == "msg" else "pass"
    bob = await sdk(proxy.url, "bob")
    alice = await sdk(hub.url, "alice")
    for n in range(1, 6):
        await alice.send_text(f"m{n}", to="bob")
    assert seqs(await messages(bob, 5)) == [1, 2, 3, 4, 5]
    assert not [e for e in await quiet(bob) if isinstance(e, Message)]
    assert bob.duplicates_dropped == 5


async def test_overtaken_messages_are_put_back_in_order(hub: ClipwireServer, sdk: SdkFactory,
                                                        proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(hub.port)
    proxy.filter = lambda frame: "hold" if msg_seq(frame) in (2, 3) else "pass"
    bob = await sdk(proxy.url, "bob", hole_grace=5.0)  # long enough that only the release fills it
    alice = await sdk(hub.url, "alice")
    for n in range(1, 6):
        await alice.send_text(f"m{n}", to="bob")
    assert seqs(await messages(bob, 1)) == [1]
    assert not [e for e in await quiet(bob, 0.3) if isinstance(e, Message)]  # 4 and 5 wait for 2, 3
    proxy.release()
    assert seqs(await messages(bob, 4)) == [2, 3, 4, 5]


async def test_slow_reader_keeps_memory_bounded_and_loses_nothing(hub: ClipwireServer,
                                                                  sdk: SdkFactory) -> None:
    bob = await sdk(hub.url, "bob", max_queued_events=4, max_buffered_messages=5)
    alice = await sdk(hub.url, "alice")
    for n in range(1, 41):
        await alice.send_text(f"m{n}", to="bob")
    assert await bob.ping() > 0  # replies still flow while nobody reads events
    assert bob._delivery.queue.qsize() <= 4
    got = await messages(bob, 40)
    assert seqs(got) == list(range(1, 41))
    assert not [e for e in await quiet(bob) if isinstance(e, Message)]


async def test_resume_after_an_outage_fills_the_gap(hub_factory: HubFactory, sdk: SdkFactory,
                                                    proxy_factory: ProxyFactory) -> None:
    hub = await hub_factory(resume_cap=3)
    proxy = await proxy_factory(hub.port)
    bob = await sdk(proxy.url, "bob")
    alice = await sdk(hub.url, "alice")
    dm = (await alice.send_text("d1", to="bob")).conv
    group = await alice.create_group(["bob"], "Crew")
    await alice.send_text("g1", conv=group)
    assert texts(await messages(bob, 2)) == ["d1", "g1"]

    proxy.refuse = True
    proxy.cut()
    lost = await next_event(bob, Disconnected)
    assert (lost.code, lost.reconnecting) == (1006, True)
    for n in range(2, 27):
        await alice.send_text(f"d{n}", conv=dm)
    for n in range(2, 10):
        await alice.send_text(f"g{n}", conv=group)
    proxy.refuse = False

    await next_event(bob, Reconnected)
    got = by_conv(await messages(bob, 25 + 8, timeout=10))
    assert texts(got[dm]) == [f"d{n}" for n in range(2, 27)]
    assert texts(got[group]) == [f"g{n}" for n in range(2, 10)]
    assert not [e for e in await quiet(bob, 0.5) if isinstance(e, Message)]
    assert bob.resume_state == {dm: 26, group: 9}
    assert bob.conversations[dm].last_seq == 26


async def test_conversations_started_while_away_are_delivered(hub: ClipwireServer, sdk: SdkFactory,
                                                              proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(hub.port)
    bob = await sdk(proxy.url, "bob")
    carol = await sdk(hub.url, "carol")
    alice = await sdk(hub.url, "alice")
    proxy.refuse = True
    proxy.cut()
    await next_event(bob, Disconnected)
    dm = ""
    for n in range(1, 4):
        dm = (await carol.send_text(f"c{n}", to="bob")).conv
    group = await alice.create_group(["bob"], "Surprise")
    await alice.send_text("welcome", conv=group)
    proxy.refuse = False

    await next_event(bob, Reconnected)
    seen = [e for e in await quiet(bob, 1.0) if isinstance(e, Message | ConversationChanged)]
    assert {e.conv for e in seen if isinstance(e, ConversationChanged)} == {dm, group}
    got = by_conv([e for e in seen if isinstance(e, Message)])
    assert texts(got[dm]) == ["c1", "c2", "c3"] and texts(got[group]) == ["welcome"]
    assert bob.conversations[group].title == "Surprise"


async def test_send_in_flight_is_repeated_with_the_same_cmid(hub: ClipwireServer, sdk: SdkFactory,
                                                             proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(hub.port)
    alice = await sdk(proxy.url, "alice")
    bob = await sdk(hub.url, "bob")
    await alice.send_text("first", to="bob")
    await messages(bob, 1)

    proxy.blackhole = True  # the hub stores the message, but its ok never reaches alice
    sending = asyncio.create_task(alice.send_text("exactly once", to="bob", cmid="retry-me"))
    stored = await next_event(bob, Message)
    await asyncio.sleep(0.1)
    assert not sending.done()
    proxy.cut()
    proxy.blackhole = False

    sent = await asyncio.wait_for(sending, 5)  # answered once, after the reconnect
    assert (sent.conv, sent.seq, sent.ts, sent.cmid) == (stored.conv, stored.seq, stored.ts, "retry-me")
    history = await bob.history(sent.conv)
    assert [m.text for m in history] == ["first", "exactly once"]
    assert not [e for e in await quiet(bob, 0.3) if isinstance(e, Message)]
    # The resume backlog brought alice her own message: not an event, she got the result.
    alice_seen = await quiet(alice, 0.3)
    assert not [e for e in alice_seen if isinstance(e, Message)]
    assert alice.resume_state[sent.conv] == 2


async def test_unrepeatable_request_in_flight_raises_connection_lost(
        hub: ClipwireServer, sdk: SdkFactory, proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(hub.port)
    alice = await sdk(proxy.url, "alice")
    proxy.blackhole = True
    creating = asyncio.create_task(alice.create_group(["bob"], "Maybe"))
    await asyncio.sleep(0.2)
    proxy.cut()
    proxy.blackhole = False
    with pytest.raises(ConnectionLost) as lost:
        await creating
    assert lost.value.t == "group.create" and lost.value.code == 1006
    await alice.wait_connected(5)
    assert await alice.ping() > 0


async def test_requests_wait_for_the_connection(hub: ClipwireServer, sdk: SdkFactory,
                                                proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(hub.port)
    alice = await sdk(proxy.url, "alice")
    proxy.refuse = True
    proxy.cut()
    await next_event(alice, Disconnected)
    assert not alice.connected
    with pytest.raises(RequestTimeout):
        await alice.ping(timeout=0.2)
    waiting = asyncio.create_task(alice.send_text("queued while offline", to="bob"))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    proxy.refuse = False
    sent = await asyncio.wait_for(waiting, 5)
    assert sent.seq == 1 and alice.connected


async def test_fill_goes_on_when_the_hub_cuts_pages_of_long_messages(
        hub_factory: HubFactory, sdk: SdkFactory, proxy_factory: ProxyFactory) -> None:
    # 40 messages of 16 kB: one history page of them is far over the hub's 150 kB send
    # buffer, so the hub cuts each page to fit; the client pages on below what came.
    hub = await hub_factory(resume_cap=3, send_buffer_bytes=150_000)
    proxy = await proxy_factory(hub.port)
    bob = await sdk(proxy.url, "bob")
    alice = await sdk(hub.url, "alice")
    dm = (await alice.send_text("hello", to="bob")).conv
    await messages(bob, 1)
    proxy.refuse = True
    proxy.cut()
    await next_event(bob, Disconnected)
    for n in range(2, 42):
        await alice.send_text(f"{n:03d}" + "\U0001F600" * 3990, conv=dm)
    proxy.refuse = False

    got = await messages(bob, 40, timeout=15)
    assert [(m.seq, m.text[:3] if m.text else "") for m in got] == [(n, f"{n:03d}") for n in range(2, 42)]
    assert not [e for e in await quiet(bob, 0.3) if isinstance(e, Message)]
    # The first connection and the one after the cut: no 4009 on the way.
    assert proxy.accepted == 2


async def test_resume_state_carries_over_to_a_new_client(hub: ClipwireServer, sdk: SdkFactory) -> None:
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    dm = (await alice.send_text("m1", to="bob")).conv
    await messages(bob, 1)
    saved = bob.resume_state
    assert saved == {dm: 1}
    await bob.aclose()
    for n in range(2, 5):
        await alice.send_text(f"m{n}", conv=dm)

    again = await sdk(hub.url, "bob", resume=saved)
    assert texts(await messages(again, 3)) == ["m2", "m3", "m4"]
    fresh = await sdk(hub.url, "bob")  # without resume, events start now
    await alice.typing(dm)  # a signal: no answer, nothing delivered
    await alice.send_text("m5", conv=dm)
    assert texts(await messages(fresh, 1)) == ["m5"]
    assert texts(await messages(again, 1)) == ["m5"]
