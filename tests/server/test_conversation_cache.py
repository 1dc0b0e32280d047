"""The membership cache against a real store: what it may keep, and what it must not."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from clipwire.server.conversations import ConversationCache
from clipwire.server.store.sqlite import SQLiteStore


async def test_a_message_from_another_node_during_a_load_is_not_lost_to_it(tmp_path: Path) -> None:
    """Node B loads a new DM; node A's first message to it commits and arrives meanwhile.

    The load read the store before that message. Cached as read, its last_seq of 0 would
    refuse bob's reply to message 1 with bad_request (seen in a cluster test).
    """
    path = tmp_path / "cache.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.ensure_dm("d1", "alice", "bob", 1)
        cache = ConversationCache(store)
        load = asyncio.ensure_future(cache.get("d1"))
        await asyncio.sleep(0)  # the load is on the store's thread
        # Without letting the loop run (so the load cannot finish here yet): the read is
        # done, then node A commits message 1 and its event arrives.
        time.sleep(0.3)  # noqa: ASYNC251
        other_node = sqlite3.connect(path, isolation_level=None)
        other_node.executescript(
            "BEGIN IMMEDIATE;"
            "INSERT INTO messages (conv, seq, sender, cmid, ts, kind, text) "
            "VALUES ('d1', 1, 'alice', 'a-1', 2, 'text', 'hi');"
            "UPDATE conversations SET last_seq = 1 WHERE id = 'd1';"
            "COMMIT;")
        other_node.close()
        cache.advanced("d1", 1)
        assert (await load) is not None
        entry = await cache.get("d1")
        assert entry is not None and entry.last_seq == 1
    finally:
        await store.close()
