"""Bursts of sends at the hub's real rate limits: paced, in order, never closed with 4008."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sdkhelp import HubFactory, SdkFactory, messages, quiet
from wire import Dial

from clipwire.client import Client, Disconnected, Message, Reconnected

# The hub's own defaults: tests/conftest.py raises them for tests that send in bulk.
DEFAULT_RATES: dict[str, Any] = {"rate_send_per_s": 20.0, "rate_history_per_s": 5.0,
                                 "rate_friend_per_s": 0.5}


async def burst(sender: Client, reader: Client, count: int) -> tuple[list[Message], list[Message]]:
    """``count`` sends at once from ``sender`` to ``reader``: (the send results, what arrived)."""
    session = sender.session
    sent, got = await asyncio.gather(
        asyncio.gather(*(sender.send_text(f"m{i}", to=reader.user) for i in range(count))),
        messages(reader, count))
    # One connection throughout: nothing was closed (4008) or reconnected.
    assert sender.session == session and sender.connected
    assert not [e for e in await quiet(sender, 0.1) if isinstance(e, Disconnected | Reconnected)]
    return list(sent), got


def assert_in_order(sent: list[Message], got: list[Message], count: int) -> None:
    expected = [(i + 1, f"m{i}") for i in range(count)]
    assert [(m.seq, m.text) for m in sent] == expected
    assert [(m.seq, m.text) for m in got] == expected


async def test_a_hundred_sends_at_once_go_out_at_the_default_rate(hub_factory: HubFactory,
                                                                   sdk: SdkFactory) -> None:
    hub = await hub_factory(**DEFAULT_RATES)
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    # 100 at 20/s (after a burst) take longer than the request timeout: waiting for
    # its turn must not count against a request.
    sent, got = await burst(alice, bob, 100)
    assert_in_order(sent, got, 100)
    # The rates it paced by: floats, kept with the other limits.
    assert alice.limits["rate_send_per_s"] == 20.0 and alice.limits["rate_send_burst"] == 40.0


async def test_a_thousand_sends_at_once_are_delivered_once_in_order(hub_factory: HubFactory,
                                                                    sdk: SdkFactory) -> None:
    hub = await hub_factory(**{**DEFAULT_RATES, "rate_send_per_s": 200.0})
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    sent, got = await burst(alice, bob, 1000)
    assert_in_order(sent, got, 1000)
    assert [m.seq for m in await bob.history(got[0].conv, limit=100)] == list(range(901, 1001))


async def test_a_refusal_for_the_users_limit_is_waited_out_and_repeated(
        hub_factory: HubFactory, sdk: SdkFactory, dial: Dial, caplog: pytest.LogCaptureFixture) -> None:
    # A user's devices together get what one connection gets: alice's phone spends it all.
    hub = await hub_factory(**DEFAULT_RATES, rate_user_scale=1.0)
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    phone = await dial(hub.url, "alice", device="phone")
    ids = [await phone.send_request("send", to="bob", kind="text", text=f"p{i}", cmid=f"p{i}")
           for i in range(40)]
    assert [(await phone.reply(rid))["t"] for rid in ids] == ["ok"] * 40
    await phone.close()  # the user's limit stays spent
    await messages(bob, 40)

    with caplog.at_level(logging.DEBUG, logger="clipwire.client"):
        sent, got = await burst(alice, bob, 30)
    assert "send refused for rate" in caplog.text  # the hub did refuse, and it was repeated
    assert [(m.seq, m.text) for m in sent] == [(41 + i, f"m{i}") for i in range(30)]
    assert [(m.seq, m.text) for m in got] == [(41 + i, f"m{i}") for i in range(30)]


async def test_a_queued_send_that_is_cancelled_is_never_sent(hub_factory: HubFactory,
                                                             sdk: SdkFactory) -> None:
    hub = await hub_factory(**DEFAULT_RATES)
    alice = await sdk(hub.url, "alice")
    bob = await sdk(hub.url, "bob")
    sends = [asyncio.create_task(alice.send_text(f"m{i}", to="bob")) for i in range(50)]
    await asyncio.sleep(0)  # each is queued; the last ones wait for tokens
    sends[45].cancel()
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert isinstance(results[45], asyncio.CancelledError)
    kept = [f"m{i}" for i in range(50) if i != 45]
    assert [m.text for m in results if isinstance(m, Message)] == kept
    assert [(m.seq, m.text) for m in await messages(bob, 49)] == list(enumerate(kept, 1))
    assert not [e for e in await quiet(bob, 0.3) if isinstance(e, Message)]


CARD = {"id": "v42", "url": "https://videos.example/v/42"}


async def test_a_share_to_more_targets_than_the_burst_waits_then_passes(
        hub_factory: HubFactory, sdk: SdkFactory, caplog: pytest.LogCaptureFixture) -> None:
    hub = await hub_factory(**DEFAULT_RATES)  # burst 40
    alice = await sdk(hub.url, "alice")
    session = alice.session
    targets = [f"u{i}" for i in range(60)]
    with caplog.at_level(logging.DEBUG, logger="clipwire.client"):
        results, after = await asyncio.gather(alice.share_video(CARD, to=targets),
                                              alice.send_text("after", to="bob"))
    assert [(r.target, r.ok, r.error) for r in results] == [(t, True, None) for t in targets]
    assert after.seq == 1  # it waited behind the share's debt, then went out
    # The hub set the share's cost aside and named its time; the same share then passed.
    assert "share refused for rate" in caplog.text
    assert alice.session == session and alice.connected
    assert not [e for e in await quiet(alice, 0.1) if isinstance(e, Disconnected | Reconnected)]


async def test_a_share_costs_what_the_hub_counts_each_target_once(
        hub_factory: HubFactory, sdk: SdkFactory, caplog: pytest.LogCaptureFixture) -> None:
    hub = await hub_factory(**{**DEFAULT_RATES, "rate_send_per_s": 5.0})  # burst 10
    alice = await sdk(hub.url, "alice")
    users = [f"u{i}" for i in range(5)]
    loop = asyncio.get_running_loop()
    start = loop.time()
    with caplog.at_level(logging.DEBUG, logger="clipwire.client"):
        # Each user three times: the hub drops the repeats and counts five, so four
        # tokens are left for the sends, which go out at once.
        results, *sent = await asyncio.gather(
            alice.share_video(CARD, to=users * 3),
            *(alice.send_text("hi", to=f"v{i}") for i in range(4)))
    assert [(r.target, r.ok) for r in results] == [(u, True) for u in users]
    assert [m.seq for m in sent] == [1] * 4
    assert loop.time() - start < 0.6  # counted as fifteen, the sends would wait 1.4 s or more
    assert "refused for rate" not in caplog.text
