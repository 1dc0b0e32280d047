"""--card-resolver-url: the stored card is the backend's; an unknown video is refused, and on
any other failure --card-resolver-failure refuses (default) or marks the client's card unverified."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hookhelp import Backend, answer
from wire import Dial, HubFactory, RawClient, video_card

from clipwire.client.models import card_from_wire
from clipwire.protocol import VideoCard
from clipwire.server import ClipwireServer

CANONICAL = {"url": "https://videos.example/v/42", "thumb": "https://img.example/42.jpg",
             "caption": "the cat that plays piano", "author": "catlover", "duration_ms": 31_000}
FORGED = video_card("v42", url="https://evil.example/phish", thumb="https://evil.example/x.jpg",
                    caption="FREE PRIZE", author="admin", duration_ms=999_999)


def resolver(backend: Backend, **more: Any) -> dict[str, Any]:
    return {"card_resolver_url": backend.url("/cards/{id}"), "hook_timeout_s": 0.2, **more}


async def pair(server: ClipwireServer, dial: Dial) -> tuple[RawClient, RawClient]:
    return await dial(server.url, "alice"), await dial(server.url, "bob")


async def shared(alice: RawClient, bob: RawClient, card: dict[str, Any], cmid: str) -> dict[str, Any]:
    """What bob receives, and history stores, when alice sends ``card``."""
    ok = await alice.ok("send", to="bob", cmid=cmid, kind="video", video=card, text="look")
    received = await bob.event("msg", conv=ok["conv"], seq=ok["seq"])
    stored = (await bob.ok("history", conv=ok["conv"]))["messages"][-1]
    assert stored["video"] == received["video"]
    video: dict[str, Any] = received["video"]
    return video


async def test_the_backend_card_replaces_a_forged_one(backend: Backend, hub_factory: HubFactory,
                                                      dial: Dial) -> None:
    backend.cards = {"v42": {**CANONICAL, "id": "other", "at_ms": 5}}  # its id and at_ms are ignored
    server = await hub_factory(**resolver(backend))
    alice, bob = await pair(server, dial)

    card = await shared(alice, bob, {**FORGED, "at_ms": 12_000}, "m1")
    assert card == {"id": "v42", **CANONICAL, "at_ms": 12_000}  # the sharer's moment is kept

    # A moment beyond the real duration (the forged one allowed it) is dropped, not trusted.
    card = await shared(alice, bob, {**FORGED, "at_ms": 500_000}, "m2")
    assert card == {"id": "v42", **CANONICAL}
    # ...so a reply cannot point past the real end either.
    reply = await bob.call("send", to="alice", cmid="r1", text="here",
                           reply={"seq": 2, "at_ms": 500_000})
    assert reply["t"] == "error" and reply["code"] == "bad_request"

    # The share request resolves too, once for all its targets; answers are cached.
    results = (await alice.ok("share", video=FORGED, cmid="s1", to=["bob", "carol"]))["results"]
    msg = await bob.event("msg", conv=results[0]["conv"], seq=results[0]["seq"])
    assert msg["video"] == {"id": "v42", **CANONICAL}
    assert backend.card_calls == ["v42"]


async def test_ids_are_quoted_into_the_url(backend: Backend, hub_factory: HubFactory, dial: Dial) -> None:
    odd = ["..", "a/b?c=d#e", "clip 9&x=1"]
    backend.cards = {video_id: CANONICAL for video_id in odd}
    server = await hub_factory(**resolver(backend))
    alice, bob = await pair(server, dial)
    for n, video_id in enumerate(odd):
        card = await shared(alice, bob, video_card(video_id), f"m{n}")
        assert card == {"id": video_id, **CANONICAL}
    assert backend.card_calls == odd


FAILURES = [
    (answer(200, CANONICAL, delay_s=1.0), True),
    (answer(200, raw=b"\x00garbage"), False),
    (answer(200, {**CANONICAL, "url": "javascript:alert(1)"}), False),
    (answer(200, {**CANONICAL, "duration_ms": -1}), False),
    (answer(200, ["https://videos.example/v/42"]), False),
    (answer(500, CANONICAL), False),
    (answer(503, raw=b""), False),
]
FAILURE_IDS = ["timeout", "not-json", "bad-url", "bad-duration", "not-object", "500", "503"]


async def nothing_stored(alice: RawClient, bob: RawClient) -> None:
    """Neither refused message reached bob or history: alice's next DM to bob is its first."""
    ok = await alice.ok("send", to="bob", cmid="after", text="plain")
    msg = await bob.event("msg", conv=ok["conv"])
    assert (ok["seq"], msg["cmid"]) == (1, "after")
    assert [m["cmid"] for m in (await bob.ok("history", conv=ok["conv"]))["messages"]] == ["after"]


async def refused(alice: RawClient, card: dict[str, Any]) -> tuple[str, str]:
    """The codes a send and a share of ``card`` get (neither is stored)."""
    sent = await alice.call("send", to="bob", cmid="m1", kind="video", video=card, text="look")
    share = await alice.call("share", video=card, cmid="s1", to=["bob"])
    assert sent["t"] == share["t"] == "error", (sent, share)
    return sent["code"], share["code"]


@pytest.mark.parametrize("on_failure", ["refuse", "unverified"])
async def test_a_video_the_backend_does_not_know_is_refused(
        backend: Backend, hub_factory: HubFactory, dial: Dial, on_failure: str) -> None:
    server = await hub_factory(**resolver(backend, card_resolver_failure=on_failure))
    alice, bob = await pair(server, dial)
    assert await refused(alice, FORGED) == ("not_found", "not_found")
    await nothing_stored(alice, bob)


@pytest.mark.parametrize(("script", "slow"), FAILURES, ids=FAILURE_IDS)
async def test_any_other_failure_refuses_by_default(
        backend: Backend, hub_factory: HubFactory, dial: Dial, script: Any, slow: bool) -> None:
    backend.card_script = script
    server = await hub_factory(**resolver(backend))
    alice, bob = await pair(server, dial)
    started = time.monotonic()
    assert await refused(alice, FORGED) == ("unavailable", "unavailable")
    assert time.monotonic() - started < 1.2  # slow or not, the 0.2 s timeout bounds each wait
    assert len(backend.card_calls) == 2  # failures are not cached: the backend is asked again
    await nothing_stored(alice, bob)
    failed = server.hub.metrics.registry.get_sample_value("clipwire_card_hook_calls_total",
                                                          {"outcome": "failed"})
    assert failed == 2
    # Once the backend answers, its card is stored.
    backend.card_script = answer(200, CANONICAL)
    assert await shared(alice, bob, FORGED, "m3") == {"id": "v42", **CANONICAL}


@pytest.mark.parametrize(("script", "slow"), FAILURES, ids=FAILURE_IDS)
async def test_unverified_delivers_the_client_card_marked(
        backend: Backend, hub_factory: HubFactory, dial: Dial, script: Any, slow: bool) -> None:
    backend.card_script = script
    server = await hub_factory(**resolver(backend, card_resolver_failure="unverified"))
    alice, bob = await pair(server, dial)
    client_card = video_card("v42", caption="mine", duration_ms=20_000, at_ms=3_000)

    started = time.monotonic()
    received = await shared(alice, bob, client_card, "m1")
    assert received == {**client_card, "verified": False}
    assert card_from_wire(received) == VideoCard(**client_card, verified=False)  # the Python SDK
    assert time.monotonic() - started < 0.7  # slow or not, the 0.2 s timeout bounds the wait
    # A client cannot claim its own card verified: the key is the hub's alone.
    marked = await shared(alice, bob, {**client_card, "verified": True}, "m2")
    assert marked["verified"] is False
    assert len(backend.card_calls) == 2

    # Once the backend answers, its card is stored, with no mark.
    backend.card_script = answer(200, CANONICAL)
    assert await shared(alice, bob, client_card, "m3") == {"id": "v42", **CANONICAL, "at_ms": 3_000}
