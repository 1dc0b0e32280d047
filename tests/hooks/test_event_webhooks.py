"""Presence, share analytics and the 'all' event stream; signatures as a receiver checks them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import orjson
import pytest
from conftest import Hooked
from hookhelp import WEBHOOK_SECRET, Backend, until
from wire import Dial, HubFactory, video_card

from clipwire.server import ClipwireServer, HubConfig
from clipwire.server.config import ConfigError
from clipwire.server.webhooks import sign, verify_signature

CARD = video_card("v42", caption="piano cat", duration_ms=31_000)


async def test_presence_webhooks_carry_increasing_epochs(
        hooked: Hooked, dial: Dial, backend: Backend) -> None:
    server = await hooked()
    for _ in range(2):
        bob = await dial(server.url, "bob")
        await backend.wait_events("presence", count=len(backend.events("presence")) + 1)
        await asyncio.sleep(0.01)  # the epoch is the hub's clock in ms: transitions a tick apart
        await bob.close()
        await until(lambda: "bob" not in server.hub.sessions)
        await asyncio.sleep(0.01)
    events = await backend.wait_events("presence", count=4, user="bob")
    assert [e["data"]["online"] for e in events] == [True, False, True, False]
    epochs = [e["data"]["epoch"] for e in events]
    assert epochs == sorted(epochs) and len(set(epochs)) == 4
    assert events[0]["data"]["last_seen"] is None
    assert events[1]["data"]["last_seen"] is not None
    # Each POST has its own id; each event too.
    assert len({d.webhook_id for d in backend.deliveries}) == len(backend.deliveries)
    assert len({e["id"] for e in backend.events()}) == len(backend.events())
    assert all(d.verified for d in backend.deliveries)


async def test_share_sent_opened_and_replied(hooked: Hooked, dial: Dial, backend: Backend) -> None:
    server = await hooked()
    alice, bob, carol = [await dial(server.url, u) for u in ("alice", "bob", "carol")]
    group = (await alice.ok("group.create", members=["carol", "dave"], title="g"))["conv"]
    await alice.ok("send", conv=group, cmid="hi", text="hi all")
    results = (await alice.ok("share", video=CARD, text="watch", cmid="s1", to=["bob"],
                              convs=[group]))["results"]
    dm, dm_seq = results[0]["conv"], results[0]["seq"]
    group_seq = results[1]["seq"]

    sent = await backend.wait_events("share.sent", count=2)
    by_conv = {e["data"]["conv"]: e["data"] for e in sent}
    assert by_conv[dm]["target"] == {"to": "bob"} and by_conv[dm]["seq"] == dm_seq
    assert by_conv[group]["target"] == {"conv": group} and by_conv[group]["seq"] == group_seq
    for data in by_conv.values():
        assert (data["video_id"], data["from"], data["request"]) == ("v42", "alice", "share")
        assert data["video"] == CARD

    # A plain send with a video card counts as a share too.
    await alice.ok("send", to="bob", cmid="s2", kind="video", video=video_card("v7"))
    (plain,) = await backend.wait_events("share.sent", video_id="v7")
    assert plain["data"]["request"] == "send"

    # Opened: a member other than the sharer reads up to the share, once.
    await carol.ok("read", conv=group, seq=group_seq - 1)  # not yet up to the share
    await bob.ok("read", conv=dm, seq=dm_seq)
    (opened,) = await backend.wait_events("share.opened")
    assert {k: opened["data"][k] for k in ("conv", "seq", "from", "video_id", "user")} == {
        "conv": dm, "seq": dm_seq, "from": "alice", "video_id": "v42", "user": "bob"}
    await bob.ok("read", conv=dm, seq=dm_seq)      # again: nothing new
    await alice.ok("read", conv=group, seq=group_seq)  # the sharer: not an open
    await carol.ok("read", conv=group, seq=group_seq)
    opened_events = await backend.wait_events("share.opened", count=2)
    assert [(e["data"]["user"], e["data"]["conv"]) for e in opened_events] == [
        ("bob", dm), ("carol", group)]

    # Replied: each reply of another member to the share; the sharer's own does not count.
    reply = await carol.ok("send", conv=group, cmid="r1", text="lol", reply={"seq": group_seq})
    await alice.ok("send", conv=group, cmid="r2", text="right?", reply={"seq": group_seq})
    await carol.ok("send", conv=group, cmid="r3", text="not a reply to it", reply={"seq": 1})
    (replied,) = await backend.wait_events("share.replied")
    assert {k: replied["data"][k] for k in ("conv", "seq", "from", "video_id", "user", "reply_seq")} == {
        "conv": group, "seq": group_seq, "from": "alice", "video_id": "v42", "user": "carol",
        "reply_seq": reply["seq"]}

    await asyncio.sleep(0.3)
    assert len(backend.events("share.opened")) == 2 and len(backend.events("share.replied")) == 1
    # The default groups: neither the full message stream nor reactions.
    assert backend.events("message.stored") == [] and backend.events("reaction") == []


async def test_all_adds_every_message_and_reaction(hooked: Hooked, dial: Dial, backend: Backend) -> None:
    server = await hooked(webhook_events="all")
    alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")
    ok = await alice.ok("send", to="bob", cmid="m1", text="hello")
    await alice.ok("share", video=CARD, cmid="s1", to=["bob"])
    await bob.ok("react", conv=ok["conv"], seq=2, emoji="🔥", on=True, at_ms=12_000)

    stored = await backend.wait_events("message.stored", count=2)
    assert [(e["data"]["seq"], e["data"]["kind"], e["data"]["request"]) for e in stored] == [
        (1, "text", "send"), (2, "video", "share")]
    assert sorted(stored[0]["data"]["members"]) == ["alice", "bob"]
    assert stored[0]["data"]["text"] == "hello"
    (reaction,) = await backend.wait_events("reaction")
    assert reaction["data"] == {"conv": ok["conv"], "seq": 2, "user": "bob", "emoji": "🔥", "on": True,
                                "at_ms": 12_000}
    await backend.wait_events("share.sent")
    await backend.wait_events("presence", count=2)


async def test_receiver_rejects_a_tampered_webhook(hooked: Hooked, dial: Dial, backend: Backend) -> None:
    server = await hooked()
    await dial(server.url, "bob")
    await backend.wait_deliveries(1)
    delivery = backend.deliveries[0]
    assert delivery.verified and delivery.webhook_id.startswith("wh_")
    assert delivery.signature.startswith("t=") and ",v1=" in delivery.signature
    body, header, wid = delivery.body, delivery.signature, delivery.webhook_id
    assert verify_signature(WEBHOOK_SECRET, header, body, webhook_id=wid)
    assert verify_signature(WEBHOOK_SECRET, header, body.decode(), webhook_id=wid)  # str bodies too

    tampered = body.replace(b'"online":true', b'"online":false')
    assert tampered != body and not verify_signature(WEBHOOK_SECRET, header, tampered, webhook_id=wid)
    flipped = header[:-1] + ("0" if header[-1] != "0" else "1")
    assert not verify_signature(WEBHOOK_SECRET, flipped, body, webhook_id=wid)
    assert not verify_signature("another-secret", header, body, webhook_id=wid)
    assert not verify_signature(WEBHOOK_SECRET, None, body, webhook_id=wid)
    assert not verify_signature(WEBHOOK_SECRET, "garbage", body, webhook_id=wid)
    assert not verify_signature(WEBHOOK_SECRET, "t=abc,v1=00", body, webhook_id=wid)
    # An old signature is refused (replay), however valid its MAC.
    stale = sign(WEBHOOK_SECRET, body, int(time.time()) - 3600, webhook_id=wid)
    assert not verify_signature(WEBHOOK_SECRET, stale, body, webhook_id=wid)
    assert verify_signature(WEBHOOK_SECRET, stale, body, tolerance_s=7200, webhook_id=wid)
    # A rotated secret: the receiver accepts any of several v1 values.
    other = sign("old-secret", body, int(header.split(",")[0][2:]), webhook_id=wid).split(",")[1]
    assert verify_signature(WEBHOOK_SECRET, f"{header},{other}", body, webhook_id=wid)
    assert orjson.loads(body)["events"][0]["type"] == "presence"


async def test_a_captured_webhook_does_not_replay_under_a_new_id(
        hooked: Hooked, dial: Dial, backend: Backend) -> None:
    """The id is signed: within the window, a fresh id cannot slip past de-duplication."""
    server = await hooked()
    await dial(server.url, "bob")
    await backend.wait_deliveries(1)
    delivery = backend.deliveries[0]
    body, header, wid = delivery.body, delivery.signature, delivery.webhook_id
    assert verify_signature(WEBHOOK_SECRET, header, body, webhook_id=wid)
    assert not verify_signature(WEBHOOK_SECRET, header, body, webhook_id="wh_" + "0" * 32)
    assert not verify_signature(WEBHOOK_SECRET, header, body, webhook_id="")
    assert not verify_signature(WEBHOOK_SECRET, header, body, webhook_id=None)
    # The signed string is "<id>.<t>." + body, as documented for receivers in other languages.
    timestamp = header.split(",")[0][2:]
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{wid}.{timestamp}.".encode() + body,
                   hashlib.sha256).hexdigest()
    assert header == f"t={timestamp},v1={mac}"


@pytest.mark.parametrize(("settings", "named"), [
    ({"webhook_url": "http://127.0.0.1:9/hooks"}, "CLIPWIRE_WEBHOOK_SECRET"),
    ({"webhook_url": "ftp://backend/hooks", "webhook_secret": "s"}, "CLIPWIRE_WEBHOOK_URL"),
    ({"webhook_events": "push,everything"}, "CLIPWIRE_WEBHOOK_EVENTS"),
    ({"webhook_queue_max": 0}, "CLIPWIRE_WEBHOOK_QUEUE_MAX"),
    ({"dm_policy_url": "http://backend/dm?from={sender}"}, "CLIPWIRE_DM_POLICY_URL"),
    ({"card_resolver_url": "http://backend/cards"}, "CLIPWIRE_CARD_RESOLVER_URL"),
    ({"hook_timeout_s": 0.0}, "CLIPWIRE_HOOK_TIMEOUT_S"),
])
def test_wrong_hook_settings_are_named_at_start(settings: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        HubConfig(secret="s", **settings).check()  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["webhook_url", "dm_policy_url", "card_resolver_url"])
def test_plain_http_hooks_are_refused_off_loopback(name: str) -> None:
    """Hook answers decide DMs and cards, and webhooks carry messages: no clear text on a network."""
    path = {"webhook_url": "/hooks", "dm_policy_url": "/dm?from={sender}&to={recipient}",
            "card_resolver_url": "/cards/{id}"}[name]
    base = {"secret": "s" * 32, "webhook_secret": "w"}
    with pytest.raises(ConfigError, match=f"CLIPWIRE_{name.upper()} must be https://"):
        HubConfig(**base, **{name: "http://backend.internal" + path}).check()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="CLIPWIRE_HOOK_ALLOW_HTTP"):
        HubConfig(**base, **{name: "http://10.0.0.7:8080" + path}).check()  # type: ignore[arg-type]
    for url in ("https://backend.internal", "http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"):
        HubConfig(**base, **{name: url + path}).check()  # type: ignore[arg-type]
    allowed = {name: "http://backend.internal" + path, "hook_allow_http": True}
    HubConfig(**base, **allowed).check()  # type: ignore[arg-type]


async def test_webhook_metrics_are_exported(hooked: Hooked, dial: Dial, backend: Backend,
                                            hub_factory: HubFactory) -> None:
    server = await hooked()
    await dial(server.url, "bob")
    await backend.wait_events("presence")
    metrics = server.hub.metrics.render().decode()
    for name in ("clipwire_webhook_queue_depth", "clipwire_webhook_pending_pushes",
                 "clipwire_webhook_sent_total", "clipwire_webhook_failed_total",
                 "clipwire_webhook_retries_total", "clipwire_webhook_post_seconds_bucket"):
        assert name in metrics, name
    assert server.webhooks is not None
    await until(lambda: server.webhooks is not None and server.webhooks.stats.sent >= 1)
    # Without a webhook URL, nothing is started or exported.
    plain: ClipwireServer = await hub_factory(db=str(server.config.db) + ".plain")
    assert plain.webhooks is None
    assert "clipwire_webhook_" not in plain.hub.metrics.render().decode()
