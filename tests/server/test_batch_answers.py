"""One message of a group commit that fails after being stored costs the others nothing.

The failure is real: the embedding application's own broker (a ``Broker`` passed
to ``ClipwireServer``) raises while publishing one message. The batch is real
too: another writer holds the SQLite database, as a second process would, so the
sends gather behind it and are committed together when it lets go.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from socialhelp import until
from wire import Dial, HubFactory, history_all, video_card

from clipwire.server.broker.memory import MemoryBroker
from clipwire.server.store.sqlite import SQLiteStore


class BrokerFailingOn(MemoryBroker):
    """A broker that raises when asked to publish a frame holding ``marker``."""

    def __init__(self, marker: bytes) -> None:
        super().__init__()
        self.marker = marker

    def publish(self, channel: str, data: bytes) -> None:
        if self.marker in data:
            raise RuntimeError("the broker refused this frame")
        super().publish(channel, data)


async def test_a_fan_out_that_raises_loses_no_answer_of_its_batch(
    hub_factory: HubFactory, dial: Dial, tmp_path: Path
) -> None:
    server = await hub_factory(db=str(tmp_path / "batch.db"), broker=BrokerFailingOn(b"poison"))
    reader = await dial(server.url, "reader")
    senders = [await dial(server.url, f"s{n}") for n in range(4)]
    conv = (await reader.ok("group.create", members=["s0", "s1", "s2", "s3"]))["conv"]
    other = (await reader.ok("group.create", members=["s0"]))["conv"]

    other_writer = sqlite3.connect(tmp_path / "batch.db", isolation_level=None)
    try:
        other_writer.execute("BEGIN IMMEDIATE")
        first = await senders[0].send_request("send", conv=conv, cmid="first", text="first")
        # The writer took the first message and waits for the database.
        store = server.store
        assert isinstance(store, SQLiteStore)
        await until(lambda: store._write_lock.locked() and server.hub.writer.pending == 0)
        poisoned = await senders[1].send_request("send", conv=conv, cmid="p", text="poison")
        await until(lambda: server.hub.writer.pending == 1)
        later = [await s.send_request("send", conv=conv, cmid=f"m{n}", text=f"after {n}")
                 for n, s in enumerate(senders[2:], start=2)]
        share = await senders[0].send_request("share", cmid="sh", convs=[conv, other], video=video_card())
        await until(lambda: server.hub.writer.pending == 5)  # one batch: the poison first
    finally:
        other_writer.rollback()
        other_writer.close()

    assert (await senders[0].reply(first))["seq"] == 1
    # The poisoned message was stored, so its sender is answered too.
    assert (await senders[1].reply(poisoned))["seq"] == 2
    assert [(await s.reply(rid))["seq"] for s, rid in zip(senders[2:], later, strict=True)] == [3, 4]
    results = (await senders[0].reply(share))["results"]
    assert [(r["conv"], r["seq"]) for r in results] == [(conv, 5), (other, 1)]
    for seq in range(1, 6):  # and every message reached the local members
        await reader.event("msg", conv=conv, seq=seq)
    assert [m["cmid"] for m in await history_all(reader, conv)] == ["first", "p", "m2", "m3", "sh"]
    failures = server.hub.metrics.registry.get_sample_value("clipwire_after_commit_failures_total")
    assert failures == 1
