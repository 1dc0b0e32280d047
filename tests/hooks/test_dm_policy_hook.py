"""--dm-policy-url: the backend decides who may DM whom; any failure refuses (fails closed)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hookhelp import Backend, answer, unused_port
from wire import Dial, HubFactory, RawClient

from clipwire.server import ClipwireServer


def policy(backend: Backend, **more: Any) -> dict[str, Any]:
    # dm_policy "friends" is what the URL replaces: nobody here is friends with anyone.
    return {"dm_policy": "friends", "dm_policy_url": backend.url("/dm?from={sender}&to={recipient}"),
            "hook_timeout_s": 0.2, **more}


async def refused(client: RawClient, to: str, cmid: str) -> bool:
    reply = await client.call("send", to=to, cmid=cmid, text="hi")
    if reply["t"] == "error":
        assert reply["code"] == "forbidden", reply  # as any refusal by policy or block
        return True
    return False


def calls(server: ClipwireServer, outcome: str) -> float:
    value = server.hub.metrics.registry.get_sample_value("clipwire_dm_policy_hook_calls_total",
                                                         {"outcome": outcome})
    return value or 0.0


async def test_backend_allows_and_denies_and_answers_are_cached(
        backend: Backend, hub_factory: HubFactory, dial: Dial) -> None:
    backend.dm_rules = {("alice", "bob"): True, ("alice", "carol"): False}
    server = await hub_factory(**policy(backend, hook_cache_ttl_s=0.5))
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")

    ok = await alice.ok("send", to="bob", cmid="m1", text="allowed, friends or not")
    await bob.event("msg", conv=ok["conv"])
    assert await refused(alice, "carol", "m2")
    assert await refused(bob, "alice", "m3")  # a direction of its own, asked separately
    assert backend.dm_calls == [("alice", "bob"), ("alice", "carol"), ("bob", "alice")]

    # Within the TTL both answers come from the cache, by conv as well as by user.
    for n in range(5):
        await alice.ok("send", conv=ok["conv"], cmid=f"again-{n}", text="cached")
    assert await refused(alice, "carol", "m4")
    assert len(backend.dm_calls) == 3
    assert calls(server, "cached") == 6 and calls(server, "ok") == 3

    # After it, the backend's new answer holds.
    backend.dm_rules[("alice", "carol")] = True
    await asyncio.sleep(0.5)
    assert not await refused(alice, "carol", "m5")
    assert len(backend.dm_calls) == 4


async def test_ids_are_quoted_into_the_url(backend: Backend, hub_factory: HubFactory, dial: Dial) -> None:
    sly = "mallory&to=bob"
    backend.dm_rules = {(sly, "a b/c?d#e"): True}
    server = await hub_factory(**policy(backend))
    mallory = await dial(server.url, sly)
    assert not await refused(mallory, "a b/c?d#e", "m1")
    assert await refused(mallory, "bob", "m2")  # the name cannot smuggle in another recipient
    assert backend.dm_calls == [(sly, "a b/c?d#e"), (sly, "bob")]


async def test_a_slow_backend_fails_closed_within_the_timeout(
        backend: Backend, hub_factory: HubFactory, dial: Dial) -> None:
    backend.dm_rules = {("alice", "bob"): True}
    backend.dm_script = answer(200, {"allow": True}, delay_s=1.0)
    server = await hub_factory(**policy(backend))
    alice = await dial(server.url, "alice")

    started = time.monotonic()
    assert await refused(alice, "bob", "m1")
    assert time.monotonic() - started < 0.6  # the 0.2 s timeout, not the backend's second
    assert calls(server, "failed") == 1

    # A failure is not cached: once the backend answers again, it decides.
    backend.dm_script = backend._dm_rules
    assert not await refused(alice, "bob", "m2")


@pytest.mark.parametrize("script", [
    answer(200, raw=b"<html>not json</html>"),
    answer(200, {"allow": "yes"}),
    answer(200, {"allowed": True}),
    answer(200, [True]),
    answer(200, raw=b'{"allow": true' + b" " * 70_000 + b"}"),  # too large to be an answer
    answer(500, {"allow": True}),
    answer(302, {"allow": True}),
], ids=["not-json", "not-bool", "no-allow", "not-object", "too-large", "500", "redirect"])
async def test_garbage_and_errors_fail_closed(backend: Backend, hub_factory: HubFactory, dial: Dial,
                                              script: Any) -> None:
    backend.dm_script = script
    server = await hub_factory(**policy(backend))
    alice = await dial(server.url, "alice")
    assert await refused(alice, "bob", "m1")
    assert await refused(alice, "bob", "m2")
    assert len(backend.dm_calls) == 2 and calls(server, "failed") == 2  # failures are asked again


async def test_a_down_backend_fails_closed(hub_factory: HubFactory, dial: Dial) -> None:
    server = await hub_factory(
        dm_policy="everyone", hook_timeout_s=0.2,
        dm_policy_url=f"http://127.0.0.1:{unused_port()}/dm?from={{sender}}&to={{recipient}}")
    alice = await dial(server.url, "alice")
    assert await refused(alice, "bob", "m1")  # "everyone" is replaced too


async def test_concurrent_asks_share_one_request(backend: Backend, hub_factory: HubFactory,
                                                 dial: Dial) -> None:
    backend.dm_rules = {("alice", "bob"): True}
    backend.dm_script = answer(200, {"allow": True}, delay_s=0.1)
    server = await hub_factory(**policy(backend))
    devices = [await dial(server.url, "alice", device=f"d{n}") for n in range(4)]
    rids = [await d.send_request("send", to="bob", cmid=f"m{n}", text="hi")
            for n, d in enumerate(devices)]
    replies = [await d.reply(rid) for d, rid in zip(devices, rids, strict=True)]
    assert [r["t"] for r in replies] == ["ok"] * 4
    assert backend.dm_calls == [("alice", "bob")]


async def test_blocks_refuse_whatever_the_backend_says(backend: Backend, hub_factory: HubFactory,
                                                       dial: Dial) -> None:
    backend.dm_rules = {("alice", "bob"): True}
    server = await hub_factory(**policy(backend))
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")
    await bob.ok("block", user="alice")
    assert await refused(alice, "bob", "m1")
