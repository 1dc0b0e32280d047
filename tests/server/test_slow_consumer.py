"""A client that stops reading is closed with 4009; everyone else is served on."""

from __future__ import annotations

import asyncio

from wire import Dial, HubFactory, RawClient, token


async def test_a_client_that_never_reads_is_closed_4009_and_resumes(
    hub_factory: HubFactory, dial: Dial
) -> None:
    hub = await hub_factory(send_buffer_bytes=64 * 1024)
    alice, bob = await dial(hub.url, "alice"), await dial(hub.url, "bob")
    stalled = await RawClient.open(hub.url, max_queue=1)
    await stalled.hello(token("carol"))
    conv = (await alice.ok("group.create", members=["bob", "carol"], title="big"))["conv"]
    await bob.event("conv", conv=conv)
    stalled.ws.transport.pause_reading()  # carol's phone froze: nothing is read any more

    bob_seqs: list[int] = []
    enough = asyncio.Event()
    target = [0]

    async def bob_reads() -> None:
        while True:
            bob_seqs.append((await bob.event("msg", conv=conv, timeout=30))["seq"])
            if target[0] and len(bob_seqs) >= target[0]:
                enough.set()

    reader = asyncio.create_task(bob_reads())
    body = "x" * 3900
    sent = 0
    try:
        # Loopback kernel buffers absorb a few MB before the hub's own buffer grows.
        for n in range(5000):
            await alice.ok("send", conv=conv, cmid=f"m{n}", text=body)
            sent += 1
            (carol,) = hub.hub.sessions["carol"]
            if carol.conn._close is not None:  # the hub gave up on carol
                break
        assert carol.conn._close is not None and carol.conn._close[0] == 4009
        target[0] = sent
        if len(bob_seqs) < sent:  # bob is served throughout
            await asyncio.wait_for(enough.wait(), 20)
    finally:
        reader.cancel()
    assert bob_seqs == list(range(1, sent + 1))

    stalled.ws.transport.resume_reading()
    code, _reason = await stalled.closed(timeout=20)
    assert code == 4009
    # carol comes back and resumes: a backlog that fits, then a gap for the rest.
    again = await dial(hub.url, "carol", resume={conv: 0})
    gap = await again.event("gap", conv=conv)
    backlog = [f for f in again.queued() if f["t"] == "msg"]
    assert [m["seq"] for m in backlog] == list(range(1, gap["from_seq"]))
    assert gap["to_seq"] == sent
    history = (await again.ok("history", conv=conv, before=gap["to_seq"] + 1, limit=5))["messages"]
    assert [m["seq"] for m in history] == list(range(sent - 4, sent + 1))


async def test_ephemeral_events_are_dropped_first(hub_factory: HubFactory, dial: Dial) -> None:
    hub = await hub_factory(send_buffer_bytes=256 * 1024, typing_per_s=1000.0)
    alice = await dial(hub.url, "alice")
    stalled = await RawClient.open(hub.url, max_queue=1)
    await stalled.hello(token("carol"))
    conv = (await alice.ok("group.create", members=["carol"], title="busy"))["conv"]
    stalled.ws.transport.pause_reading()
    (carol,) = hub.hub.sessions["carol"]
    transport = carol.conn.transport
    for n in range(5000):  # fill carol's buffer past half, without closing her
        if transport.get_write_buffer_size() > 128 * 1024:
            break
        await alice.ok("send", conv=conv, cmid=f"m{n}", text="y" * 3900)
    assert 128 * 1024 < transport.get_write_buffer_size() <= 256 * 1024
    for _ in range(5):
        await alice.send_frame({"t": "typing", "conv": conv})
    await alice.ok("ping")
    assert carol.conn.ephemeral_dropped >= 3  # typing went first (the bucket lets 3+ through)...
    assert carol.conn._close is None  # ...and carol is still connected
    stalled.ws.transport.abort()
