"""Limits a hostile or broken client meets: rates, connections, origins, token claims."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus
from wire import SECRET, Dial, HubFactory, RawClient, history_all, token


async def test_sends_over_the_rate_are_refused_with_retry_after_and_not_stored(
    hub_factory: HubFactory, dial: Dial
) -> None:
    hub = await hub_factory(rate_send_per_s=5.0, rate_strikes_max=1000)
    alice, bob = await dial(hub.url, "alice"), await dial(hub.url, "bob")
    ids = [await alice.send_request("send", to="bob", cmid=f"m{n}", text="x") for n in range(30)]
    replies = [await alice.reply(rid) for rid in ids]
    accepted = [r for r in replies if r["t"] == "ok"]
    refused = [r for r in replies if r["t"] == "error"]
    assert 8 <= len(accepted) <= 12  # the burst (2 x rate) and a little refill
    assert all(r["code"] == "rate_limited" and r["retry_after_ms"] > 0 for r in refused)
    stored = await history_all(bob, accepted[0]["conv"])
    assert len(stored) == len(accepted)  # nothing over the limit was stored
    await asyncio.sleep(replies[-1]["retry_after_ms"] / 1000)  # the last one, retried as told
    assert (await alice.call("send", to="bob", cmid="m29", text="x"))["t"] == "ok"


async def test_a_share_counts_each_target(hub_factory: HubFactory, dial: Dial) -> None:
    hub = await hub_factory(rate_send_per_s=5.0)
    alice = await dial(hub.url, "alice")
    card = {"id": "v", "url": "https://videos.example/v"}
    too_many = await alice.call("share", cmid="s", video=card, to=[f"u{i}" for i in range(11)])
    assert too_many["code"] == "rate_limited"
    assert 200 <= too_many["retry_after_ms"] <= 201  # the 11th target is one token (at 5/s) past the burst


# Strikes are only a retry before its time and more refused requests waiting than any
# client pipelines (test_rate_retry.py: a client that waits as told is never closed).
@pytest.mark.parametrize("flood", ["one history again and again", "new sends", "a send retried at once"])
async def test_a_client_that_keeps_going_is_closed_4008(hub_factory: HubFactory, dial: Dial,
                                                        flood: str) -> None:
    hub = await hub_factory(rate_history_per_s=1.0, rate_send_per_s=1.0, rate_strikes_max=5)
    alice, bob = await dial(hub.url, "alice"), await dial(hub.url, "bob")
    conv = (await alice.ok("send", to="bob", cmid="1", text="hi"))["conv"]
    for n in range(200):  # over the 64 requests that may wait their time, and the 5 strikes
        try:
            if flood == "one history again and again":
                await alice.send_request("history", conv=conv)
            elif flood == "new sends":
                await alice.send_request("send", conv=conv, cmid=f"new-{n}", text="x")
            else:
                await alice.call("send", conv=conv, cmid="again", text="x")
        except Exception:
            break
    assert (await alice.closed())[0] == 4008
    assert (await bob.ok("ping"))["t"] == "ok"  # everyone else is served


async def test_typing_floods_yield_at_most_the_configured_deliveries(
    hub_factory: HubFactory, dial: Dial
) -> None:
    hub = await hub_factory(typing_per_s=2.0)
    alice, bob = await dial(hub.url, "alice"), await dial(hub.url, "bob")
    conv = (await alice.ok("send", to="bob", cmid="1", text="hi"))["conv"]
    started = time.monotonic()
    for _ in range(1000):
        await alice.send_frame({"t": "typing", "conv": conv})
    await alice.ok("ping")  # every signal was read by the hub
    elapsed = time.monotonic() - started
    got = 0
    while True:
        try:
            await bob.event("typing", timeout=0.3)
            got += 1
        except TimeoutError:
            break
    assert got <= 3 + int(2.0 * elapsed) + 1  # burst 3, refilled at 2 per second
    assert [f for f in alice.queued() if f["t"] == "error"] == []  # dropped silently


async def test_devices_per_user_and_connections_per_hub(hub_factory: HubFactory) -> None:
    hub = await hub_factory(max_devices_per_user=2, max_connections=4)
    phones = [await RawClient.open(hub.url) for _ in range(3)]
    await phones[0].hello(token("alice"))
    await phones[1].hello(token("alice"))
    reply = await phones[2].call("hello", v=1, token=token("alice"))
    assert reply["code"] == "rate_limited"
    assert (await phones[2].closed())[0] == 4008
    others = [await RawClient.open(hub.url) for _ in range(2)]  # 4 connections now
    with pytest.raises(InvalidStatus) as refused:
        await ws_connect(hub.url)
    assert refused.value.response.status_code == 503
    for client in [*phones[:2], *others]:
        await client.close()


async def test_origin_allow_list(hub_factory: HubFactory) -> None:
    hub = await hub_factory(allowed_origins="https://app.example, https://web.example")
    ok = await RawClient.open(hub.url, origin="https://app.example")
    assert (await ok.hello(token("alice")))["user"] == "alice"
    native = await RawClient.open(hub.url)  # no Origin header at all: a native app
    assert (await native.hello(token("bob")))["user"] == "bob"
    with pytest.raises(InvalidStatus) as refused:
        await ws_connect(hub.url, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    await ok.close()
    await native.close()


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "clipwire", "iss": "backend"}, None),
        ({"aud": "other-app", "iss": "backend"}, "token is for another audience"),
        ({"iss": "backend"}, "token lacks the 'aud' claim"),
        ({"aud": "clipwire", "iss": "someone-else"}, "token from another issuer"),
    ],
)
async def test_audience_and_issuer(hub_factory: HubFactory, claims: dict[str, str],
                                   message: str | None) -> None:
    hub = await hub_factory(jwt_audience="clipwire", jwt_issuer="backend")
    client = await RawClient.open(hub.url)
    signed = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60, **claims}, SECRET,
                        algorithm="HS256")
    reply = await client.call("hello", v=1, token=signed)
    if message is None:
        assert reply["t"] == "ok"
        await client.close()
        return
    assert (reply["code"], reply["message"]) == ("unauthorized", message)
    assert (await client.closed())[0] == 4001


async def test_alg_none_is_refused(hub: object, dial: Dial) -> None:
    unsigned = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, None, algorithm="none")
    client = await RawClient.open(hub.url)  # type: ignore[attr-defined]
    reply = await client.call("hello", v=1, token=unsigned)
    assert (reply["code"], reply["message"]) == ("unauthorized", "invalid token")
    assert (await client.closed())[0] == 4001
