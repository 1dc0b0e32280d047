"""The SQLite store's hot queries use indexes: none scans the messages table.

A scan costs time in proportion to everything ever stored, so a batch append
that scans gets slower every day the hub runs. The queries are caught with
SQLite's own trace callback while the store does its real work, and each is
asked for its plan with ``EXPLAIN QUERY PLAN``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clipwire.server.store.base import NewMessage
from clipwire.server.store.sqlite import SQLiteStore


async def test_batch_append_and_reads_never_scan_messages(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "plans.db")
    await store.open()
    statements: list[str] = []
    try:
        await store.ensure_dm("d1", "a", "b", 1)
        await store.ensure_dm("d2", "a", "c", 1)
        await store.append_batch([NewMessage("d1", "a", f"seed{i}", "text", 1, "x") for i in range(50)])
        for conn in {id(store._w): store._w, id(store._r): store._r}.values():
            await conn.set_trace_callback(statements.append)
        # Several keys in one batch (the case SQLite once planned as a scan), a retry among them.
        await store.append_batch([NewMessage("d1", "a", "n1", "text", 2, "one"),
                                  NewMessage("d2", "c", "n2", "text", 2, "two"),
                                  NewMessage("d1", "a", "seed3", "text", 2, "retry")])
        await store.history("d1", None, 20)
        await store.messages_after("d1", 10, 20)
    finally:
        await store.close()
    selects = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert any("cmid" in s for s in selects), statements  # the retry lookup was caught
    with sqlite3.connect(tmp_path / "plans.db") as db:
        for sql in selects:
            plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
            scans = [step for step in plan if step in ("SCAN messages", "SCAN m")]
            assert not scans, f"{sql}\n -> {plan}"
