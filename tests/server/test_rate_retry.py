"""Rate limits met by clients that behave (server/ratelimit.py): a client that waits the
``retry_after_ms`` it is told and then retries is never closed, whatever it pipelines.
Clients that do not wait are in test_limits.py.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from wire import Dial, HubFactory, RawClient, history_all

from clipwire.server.ratelimit import TokenBucket

Request = tuple[str, dict[str, Any]]


async def send_paced(client: RawClient, requests: list[Request], window: int = 8) -> list[int]:
    """Send every request with at most ``window`` of them open (awaiting a reply or a retry);
    a ``rate_limited`` one goes again, unchanged, exactly ``retry_after_ms`` after its
    refusal came. Returns each refusal's ``retry_after_ms``; any other error fails."""
    loop = asyncio.get_running_loop()
    todo, open_ = deque(requests), {}
    due: list[tuple[float, int, Request]] = []  # refused, by the time they may go again
    order, waits = itertools.count(), []
    try:
        while todo or due or open_:
            while due and due[0][0] <= loop.time():
                t, fields = request = heapq.heappop(due)[2]
                open_[await client.send_request(t, **fields)] = request
            while todo and len(open_) + len(due) < window:
                t, fields = request = todo.popleft()
                open_[await client.send_request(t, **fields)] = request
            try:
                reply = await client.next_reply(due[0][0] - loop.time() if due else 5.0)
            except TimeoutError:
                assert due, "a reply did not come"
                continue
            request = open_.pop(reply["id"])
            if reply["t"] == "error":
                assert reply["code"] == "rate_limited", reply
                waits.append(reply["retry_after_ms"])
                heapq.heappush(due, (loop.time() + reply["retry_after_ms"] / 1000, next(order), request))
    except ConnectionClosed as exc:
        raise AssertionError(f"the hub closed a client that waited as told: {exc}") from None
    return waits


@pytest.mark.parametrize("devices", [1, 2])
async def test_a_pipelining_client_that_waits_as_told_is_never_closed(
    hub_factory: HubFactory, dial: Dial, devices: int
) -> None:
    # The default send rate and strikes; one user's devices share one connection's rate.
    hub = await hub_factory(rate_send_per_s=20.0, rate_user_scale=1.0)
    bob = await dial(hub.url, "bob")
    conv = (await bob.ok("send", to="alice", cmid="hi", text="hi"))["conv"]
    phones = [await dial(hub.url, "alice", device=f"phone{d}") for d in range(devices)]
    texts = [[f"{d}-{n}" for n in range(120 // devices)] for d in range(devices)]
    waits = await asyncio.gather(*(
        send_paced(phone, [("send", {"conv": conv, "cmid": text, "text": text}) for text in mine])
        for phone, mine in zip(phones, texts, strict=True)))
    assert all(waits)  # each device met the limit
    stored = [m["text"] for m in await history_all(bob, conv)]
    assert sorted(stored) == sorted(["hi", *itertools.chain(*texts)])  # each exactly once
    for phone in phones:
        assert (await phone.call("ping"))["t"] == "ok"  # still connected


async def test_each_refused_request_is_told_its_own_time(hub_factory: HubFactory, dial: Dial) -> None:
    hub = await hub_factory(rate_send_per_s=5.0)  # burst 10, then a token each 200 ms
    alice = await dial(hub.url, "alice")
    ids = [await alice.send_request("send", to="bob", cmid=f"m{n}", text="x") for n in range(18)]
    replies = [await alice.reply(rid) for rid in ids]
    waits = [r["retry_after_ms"] for r in replies if r["t"] == "error"]
    assert len(waits) >= 6
    # One token apart, less the moment between two refusals (well under 50 ms).
    assert all(150 <= later - earlier <= 201 for earlier, later in itertools.pairwise(waits)), waits


async def test_a_share_to_more_targets_than_the_burst_passes_after_its_wait(
    hub_factory: HubFactory, dial: Dial
) -> None:
    hub = await hub_factory(rate_send_per_s=5.0)  # burst 10
    alice = await dial(hub.url, "alice")
    card = {"id": "v", "url": "https://videos.example/v"}
    targets = [f"u{i}" for i in range(14)]
    refused = await alice.call("share", cmid="big", video=card, to=targets)
    assert refused["code"] == "rate_limited"
    assert 700 <= refused["retry_after_ms"] <= 801  # 4 tokens past the burst, at 5 a second
    behind = await alice.call("share", cmid="small", video=card, to=["u1"])
    assert behind["code"] == "rate_limited"  # the tokens are kept for the first
    assert behind["retry_after_ms"] > refused["retry_after_ms"]
    await asyncio.sleep(refused["retry_after_ms"] / 1000)
    shared = await alice.call("share", cmid="big", video=card, to=targets)
    assert shared["t"] == "ok" and [r.get("error") for r in shared["results"]] == [None] * 14


async def test_five_friend_requests_at_once_then_the_rate(hub_factory: HubFactory, dial: Dial) -> None:
    hub = await hub_factory(rate_friend_per_s=0.5)  # the default: one each 2 s, burst 5
    alice = await dial(hub.url, "alice")
    ids = [await alice.send_request("friend.request", user=f"friend{n}") for n in range(7)]
    replies = [await alice.reply(rid) for rid in ids]
    assert [r["t"] for r in replies[:5]] == ["ok"] * 5, replies
    assert [r.get("code") for r in replies[5:]] == ["rate_limited"] * 2
    sixth, seventh = (r["retry_after_ms"] for r in replies[5:])
    assert 0 < sixth < seventh
    await asyncio.sleep(sixth / 1000)
    assert (await alice.call("friend.request", user="friend5"))["t"] == "ok"


async def test_a_client_with_twice_its_burst_open_at_a_high_rate_is_never_closed(
    hub_factory: HubFactory, dial: Dial
) -> None:
    # At 100 a second the burst is 200: a client may keep 2 x burst = 400 of a kind open
    # (SPEC 4008), far past the floor of 64 promises; one connection's own limit binds.
    hub = await hub_factory(rate_send_per_s=100.0)
    bob = await dial(hub.url, "bob")
    conv = (await bob.ok("send", to="alice", cmid="hi", text="hi"))["conv"]
    alice = await dial(hub.url, "alice")
    burst = int(alice.welcome["limits"]["rate_send_burst"])
    window = 2 * burst
    texts = [f"m{n}" for n in range(window + burst)]
    waits = await send_paced(alice, [("send", {"conv": conv, "cmid": t, "text": t}) for t in texts],
                             window=window)
    assert len(waits) >= burst  # the whole first window was sent at once: half of it waited
    assert sorted(m["text"] for m in await history_all(bob, conv)) == sorted(["hi", *texts])
    assert (await alice.call("ping"))["t"] == "ok"


async def test_a_closed_connections_unclaimed_requests_stop_holding_its_users_limit(
    hub_factory: HubFactory, dial: Dial
) -> None:
    # One device is the user's whole limit: 5 sends a second, burst 10.
    hub = await hub_factory(rate_send_per_s=5.0, rate_user_scale=1.0)
    alice = await dial(hub.url, "alice", device="laptop")
    ids = [await alice.send_request("send", to="bob", cmid=f"m{n}", text="x") for n in range(20)]
    refused = [r for r in [await alice.reply(rid) for rid in ids] if r["t"] == "error"]
    assert len(refused) >= 9  # promised up to ~2 s ahead: the user's bucket is in debt
    await alice.close()
    while "alice" in hub.hub.sessions:  # noqa: ASYNC110 - polling the hub's state
        await asyncio.sleep(0.01)
    # Reconnected, she waits for one token at most, not behind requests no one will claim.
    phone = await dial(hub.url, "alice", device="phone")
    reply = await phone.call("send", to="bob", cmid="p1", text="x")
    assert reply["t"] == "ok" or reply["retry_after_ms"] <= 201, reply


def test_a_refund_never_gives_back_what_the_bucket_would_have_lost_to_its_cap() -> None:
    bucket, t = TokenBucket(rate=10.0, burst=10.0), time.monotonic()
    bucket.wait_s(1, t)
    first = bucket.set_aside(15)  # 10 -> -5
    bucket.wait_s(1, t + 1)  # back to +5: without the set-aside it would have capped at 10
    second = bucket.set_aside(10)  # -> -5, in debt since
    bucket.refund([(first, 15)], t + 1)
    assert bucket.wait_s(1, t + 1) == pytest.approx(0.6)  # nothing given back
    bucket.refund([(second, 10)], t + 1)
    assert bucket.wait_s(5, t + 1) == 0.0 and bucket.wait_s(6, t + 1) > 0  # exactly 10 back
