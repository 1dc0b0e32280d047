from __future__ import annotations

from typing import Any

from wire import RawClient, token

from clipwire.server import ClipwireServer


async def test_dm_reaches_recipient_and_sender_gets_ok(hub: ClipwireServer, connect: Any) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    ok = await alice.ok("send", to="bob", cmid="m1", text="hi bob")
    msg = await bob.event("msg")
    assert (msg["conv"], msg["seq"], msg["from"], msg["text"]) == (ok["conv"], 1, "alice", "hi bob")


async def test_hub_process_starts(hub_process: Any) -> None:
    hub_process.start()
    client = await RawClient.open(hub_process.url)
    welcome = await client.hello(token("alice"))
    assert welcome["user"] == "alice"
    await client.close()
