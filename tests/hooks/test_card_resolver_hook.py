"""--card-resolver-url: the stored card is the backend's; on any failure, the client's (falls back)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hookhelp import Backend, answer
from wire import Dial, HubFactory, RawClient, video_card

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


@pytest.mark.parametrize(("script", "slow"), [
    (answer(200, CANONICAL, delay_s=1.0), True),
    (answer(200, raw=b"\x00garbage"), False),
    (answer(200, {**CANONICAL, "url": "javascript:alert(1)"}), False),
    (answer(200, {**CANONICAL, "duration_ms": -1}), False),
    (answer(200, ["https://videos.example/v/42"]), False),
    (answer(500, CANONICAL), False),
    (answer(404, {"error": "no such video"}), False),
], ids=["timeout", "not-json", "bad-url", "bad-duration", "not-object", "500", "404"])
async def test_any_failure_falls_back_to_the_client_card(
        backend: Backend, hub_factory: HubFactory, dial: Dial, script: Any, slow: bool) -> None:
    backend.card_script = script
    server = await hub_factory(**resolver(backend))
    alice, bob = await pair(server, dial)
    client_card = video_card("v42", caption="mine", duration_ms=20_000, at_ms=3_000)

    started = time.monotonic()
    assert await shared(alice, bob, client_card, "m1") == client_card
    assert time.monotonic() - started < 0.7  # slow or not, the 0.2 s timeout bounds the wait
    assert await shared(alice, bob, client_card, "m2") == client_card
    assert len(backend.card_calls) == 2  # failures are not cached: the backend is asked again
    failed = server.hub.metrics.registry.get_sample_value("clipwire_card_hook_calls_total",
                                                          {"outcome": "failed"})
    assert failed == 2

    # Once the backend answers, its card is stored again.
    backend.card_script = answer(200, CANONICAL)
    assert await shared(alice, bob, client_card, "m3") == {"id": "v42", **CANONICAL, "at_ms": 3_000}
