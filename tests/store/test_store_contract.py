"""The contract every ``Store`` must keep, run against each implementation.

The multi-node work adds PostgreSQL to ``store`` below; every test here must
pass for it unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from services import fresh_schema, require

from clipwire.server.store.base import NewMessage, Store, StoreUnavailable
from clipwire.server.store.group_commit import GroupCommitWriter
from clipwire.server.store.postgres import PostgresStore
from clipwire.server.store.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from clipwire.server.store.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        impl: Store = SQLiteStore(tmp_path / "store.db")
        await impl.open()
        yield impl
        await impl.close()
        return
    async with fresh_schema(require("postgres")) as dsn:
        impl = PostgresStore(dsn, migrate_on_open=True)
        await impl.open()
        yield impl
        await impl.close()


def msg(conv: str, sender: str, cmid: str, text: str = "hi", ts: int = 1) -> NewMessage:
    return NewMessage(conv, sender, cmid, "text", ts, text)


async def test_append_assigns_gap_free_seqs_per_conversation(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    await store.create_group("g1", "team", "a", ["b", "c"], 1)
    items = [msg("d1", "a", "1"), msg("g1", "b", "1"), msg("d1", "b", "1"), msg("g1", "a", "2")]
    results = await store.append_batch(items)
    assert [(r.message.conv, r.message.seq) for r in results if r] == [
        ("d1", 1), ("g1", 1), ("d1", 2), ("g1", 2)
    ]
    more = await store.append_batch([msg("d1", "a", "3")])
    assert more[0] is not None and more[0].message.seq == 3


async def test_retry_by_cmid_returns_first_message(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    first = await store.append_batch([msg("d1", "a", "x", "one", ts=5)])
    again = await store.append_batch([msg("d1", "a", "x", "two", ts=9), msg("d1", "a", "x", "three")])
    assert first[0] is not None and not first[0].duplicate
    for result in again:
        assert result is not None and result.duplicate
        assert result.message == first[0].message
    # Same cmid from another sender, or in another conversation, is a new message.
    await store.ensure_dm("d2", "a", "c", 1)
    other = await store.append_batch([msg("d1", "b", "x"), msg("d2", "a", "x")])
    assert [r.message.seq for r in other if r and not r.duplicate] == [2, 1]


async def test_duplicate_within_one_batch_is_stored_once(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    results = await store.append_batch([msg("d1", "a", "x"), msg("d1", "a", "x")])
    assert results[0] is not None and results[1] is not None
    assert results[1].duplicate and results[1].message == results[0].message
    assert [m.seq for m in await store.history("d1", None, 10)] == [1]


async def test_unknown_conversation_yields_none_and_spares_the_rest(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    results = await store.append_batch([msg("nope", "a", "1"), msg("d1", "a", "2")])
    assert results[0] is None
    assert results[1] is not None and results[1].message.seq == 1


async def test_history_pages_backwards_oldest_first(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    await store.append_batch([msg("d1", "a", str(i), f"m{i}") for i in range(1, 11)])
    newest = await store.history("d1", None, 4)
    assert [m.seq for m in newest] == [7, 8, 9, 10]
    older = await store.history("d1", 7, 4)
    assert [m.seq for m in older] == [3, 4, 5, 6]
    assert [m.seq for m in await store.history("d1", 3, 4)] == [1, 2]
    assert [m.seq for m in await store.messages_after("d1", 8, 5)] == [9, 10]
    got = await store.get_message("d1", 5)
    assert got is not None and got.text == "m5" and got.sender == "a"
    assert await store.get_message("d1", 11) is None


async def test_video_and_reply_round_trip(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    card = {"id": "v1", "url": "https://v/1", "duration_ms": 9000, "caption": "ok 👍"}
    await store.append_batch([NewMessage("d1", "a", "c1", "video", 3, "look", card)])
    await store.append_batch([NewMessage("d1", "b", "c2", "text", 4, "nice", None, {"seq": 1, "at_ms": 5})])
    first, second = await store.history("d1", None, 10)
    assert first.video == card and first.kind == "video" and first.text == "look"
    assert second.reply == {"seq": 1, "at_ms": 5}


async def test_dm_created_once_with_both_members(store: Store) -> None:
    assert await store.ensure_dm("d1", "a", "b", 1) is True
    assert await store.ensure_dm("d1", "a", "b", 2) is False
    conv = await store.load_conversation("d1")
    assert conv is not None and conv.kind == "dm" and set(conv.members) == {"a", "b"}
    assert await store.load_conversation("missing") is None


async def test_group_membership_changes(store: Store) -> None:
    await store.create_group("g1", "team", "a", ["b", "c"], 1)
    await store.add_members("g1", ["d", "b"], 2)
    await store.remove_members("g1", ["c"])
    await store.set_role("g1", "b", "owner")
    conv = await store.load_conversation("g1")
    assert conv is not None and conv.title == "team"
    assert conv.members == {"a": "owner", "b": "owner", "d": "member"}


async def test_user_conversations_summarise_unread(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    await store.create_group("g1", "team", "b", ["a"], 1)
    await store.append_batch([msg("d1", "a", "1"), msg("d1", "b", "2"), msg("d1", "b", "3")])
    await store.append_batch([msg("g1", "b", "1")])
    summaries = {s.conv: s for s in await store.user_conversations("a")}
    assert summaries["d1"].last_seq == 3 and summaries["d1"].unread == 2
    assert summaries["d1"].kind == "dm" and set(summaries["d1"].members) == {"a", "b"}
    assert summaries["g1"].unread == 1 and summaries["g1"].title == "team"
    assert await store.user_conversations("nobody") == []


async def test_group_commit_writer_batches_and_reports_in_order(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    reported: list[tuple[int, int]] = []
    done = asyncio.Event()

    def on_commit(tickets: object, results: object) -> None:
        for ticket, result in zip(tickets, results, strict=True):  # type: ignore[call-overload]
            reported.append((ticket, result.message.seq))
        if len(reported) == 200:
            done.set()

    writer: GroupCommitWriter[int] = GroupCommitWriter(store, on_commit, lambda t, e: None)
    writer.start()
    for i in range(200):
        writer.submit(msg("d1", "a", str(i)), i)
    await asyncio.wait_for(done.wait(), 10)
    await writer.close()
    assert reported == [(i, i + 1) for i in range(200)]
    assert writer.batches < 200  # submissions made together shared transactions


async def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "reopen.db"
    first = SQLiteStore(path)
    await first.open()
    await first.ensure_dm("d1", "a", "b", 1)
    await first.append_batch([msg("d1", "a", "1")])
    await first.close()
    second = SQLiteStore(path)
    await second.open()
    assert [m.seq for m in await second.history("d1", None, 10)] == [1]
    await second.close()


async def test_read_marker_never_moves_back(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    await store.append_batch([msg("d1", "a", str(i)) for i in range(5)])
    assert await store.set_read("d1", "b", 3) == 3
    assert await store.set_read("d1", "b", 2) == 3
    assert await store.set_read("d1", "b", 5) == 5
    (summary,) = await store.user_conversations("b")
    assert summary.read_seq == 5 and summary.unread == 0


async def test_reactions_summarise_per_message(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    await store.append_batch([msg("d1", "a", "1"), msg("d1", "a", "2")])
    assert await store.set_reaction("d1", 1, "a", "🔥", True, 1200, 5)
    assert await store.set_reaction("d1", 1, "b", "🔥", True, 300, 6)
    assert not await store.set_reaction("d1", 1, "b", "🔥", True, 300, 7)  # nothing new
    assert await store.set_reaction("d1", 1, "b", "😂", True, None, 8)
    assert await store.set_reaction("d1", 2, "b", "👍", True, None, 9)
    assert await store.set_reaction("d1", 2, "b", "👍", False, None, 10)
    assert not await store.set_reaction("d1", 2, "b", "👍", False, None, 11)
    got = await store.reactions("d1", [1, 2], "a")
    assert [(r.seq, r.emoji, r.count, r.me, r.moments) for r in got] == [
        (1, "🔥", 2, True, (300, 1200)), (1, "😂", 1, False, ()),
    ]


async def test_unsend_deletes_body_and_reactions_keeps_seq(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    card = {"id": "v1", "url": "https://v/1"}
    await store.append_batch([NewMessage("d1", "a", "c1", "video", 3, "look", card), msg("d1", "a", "2")])
    await store.set_reaction("d1", 1, "b", "🔥", True, None, 4)
    await store.unsend("d1", 1)
    first, second = await store.history("d1", None, 10)
    assert (first.seq, first.unsent, first.text, first.video) == (1, True, None, None)
    assert first.to_wire() == {"conv": "d1", "seq": 1, "from": "a", "ts": 3, "kind": "video",
                               "cmid": "c1", "unsent": True}
    assert second.seq == 2 and not second.unsent
    assert await store.reactions("d1", [1], "b") == []


async def test_social_graph_round_trip(store: Store) -> None:
    await store.set_friendship("a", "b", "pending", "a", 1)
    a, b = await store.social("a"), await store.social("b")
    assert a.requests_out == {"b"} and b.requests_in == {"a"} and not a.friends
    await store.set_friendship("b", "a", "friends", None, 2)
    assert (await store.social("a")).friends == {"b"} and (await store.social("b")).friends == {"a"}
    await store.set_block("c", "a", True, 3)
    await store.set_block("c", "a", True, 4)
    assert (await store.social("a")).blocked_by == {"c"}
    assert (await store.social("c")).blocking == {"a"}
    await store.set_friendship("a", "b", None, None, 5)
    await store.set_block("c", "a", False, 6)
    a = await store.social("a")
    assert not (a.friends or a.requests_in or a.requests_out or a.blocked_by or a.blocking)


async def test_last_seen_and_shared_conversations(store: Store) -> None:
    await store.set_last_seen({"a": 10, "b": 20})
    await store.set_last_seen({"a": 5})  # never moves back
    assert await store.last_seen(["a", "b", "c"]) == {"a": 10, "b": 20}
    await store.create_group("g1", "team", "a", ["b"], 1)
    assert await store.share_conversation("a", "b")
    assert not await store.share_conversation("a", "c")



async def test_group_counts_count_groups_only(store: Store) -> None:
    """What max_groups_per_user is checked against: groups, not DMs, per user asked."""
    await store.create_group("g1", "one", "a", ["b"], 1)
    await store.create_group("g2", "two", "a", ["c"], 2)
    await store.ensure_dm("dm:ab", "a", "b", 3)
    await store.remove_members("g2", ["c"])
    assert await store.group_counts(["a", "b", "c", "d"]) == {"a": 2, "b": 1}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_writers_on_several_nodes_keep_seqs_gap_free(kind: str, tmp_path: Path) -> None:
    """Three store instances (as three hub nodes would hold) append to one conversation."""

    async def run(make: Any) -> None:
        nodes: list[Store] = [make() for _ in range(3)]
        for node in nodes:
            await node.open()
        try:
            await nodes[0].create_group("g1", "team", "a", ["b", "c"], 1)

            async def writer(node: Store, name: str) -> None:
                for batch in range(10):
                    items = [msg("g1", name, f"{batch}-{i}") for i in range(5)]
                    items.append(msg("g1", name, f"{batch}-0"))  # a retry inside the batch
                    await node.append_batch(items)

            await asyncio.gather(*(writer(node, name) for node, name in zip(nodes, "abc", strict=True)))
            stored = await nodes[1].history("g1", None, 500)
            assert [m.seq for m in stored] == list(range(1, 151))
            assert len({(m.sender, m.cmid) for m in stored}) == 150
        finally:
            for node in nodes:
                await node.close()

    if kind == "sqlite":
        await run(lambda: SQLiteStore(tmp_path / "shared.db"))
        return
    async with fresh_schema(require("postgres")) as dsn:
        await run(lambda: PostgresStore(dsn, migrate_on_open=True))


async def test_sqlite_writers_of_several_processes_queue_on_the_lock_file(tmp_path: Path) -> None:
    """Another process mid-write holds ``<file>-lock``: a write here waits for it, then succeeds.

    (SQLite's own lock would have been polled, with sleeps of 1, 2, 5, 10 ms and more.)
    """
    import fcntl

    store = SQLiteStore(tmp_path / "queued.db")
    await store.open()
    try:
        await store.ensure_dm("d1", "a", "b", 1)
        with (tmp_path / "queued.db-lock").open("a+b") as other:
            fcntl.flock(other, fcntl.LOCK_EX)
            write = asyncio.ensure_future(store.append_batch([msg("d1", "a", "c1")]))
            await asyncio.sleep(0.3)
            assert not write.done()  # queued behind the other process
            fcntl.flock(other, fcntl.LOCK_UN)
            [appended] = await write
            assert appended is not None and appended.message.seq == 1
    finally:
        await store.close()


async def test_a_sqlite_write_lock_held_too_long_fails_the_write_instead_of_hanging(
    tmp_path: Path,
) -> None:
    """A process stopped mid-write (SIGSTOP) keeps the lock: the others give up with
    ``unavailable`` after ``lock_wait_s``, and write again once it is released."""
    import fcntl

    store = SQLiteStore(tmp_path / "held.db", lock_wait_s=0.3)
    await store.open()
    try:
        await store.ensure_dm("d1", "a", "b", 1)
        with (tmp_path / "held.db-lock").open("a+b") as other:
            fcntl.flock(other, fcntl.LOCK_EX)
            with pytest.raises(StoreUnavailable, match="held the write lock"):
                await store.append_batch([msg("d1", "a", "c1")])
        [appended] = await store.append_batch([msg("d1", "a", "c1")])
        assert appended is not None and appended.message.seq == 1
    finally:
        await store.close()


async def test_messages_found_by_video_and_revocations(store: Store) -> None:
    await store.ensure_dm("d1", "a", "b", 1)
    await store.create_group("g1", "team", "a", ["b"], 1)
    card = {"id": "v9", "url": "https://v/9"}
    await store.append_batch([NewMessage("d1", "a", "c1", "video", 3, None, card),
                              NewMessage("g1", "a", "c1", "video", 3, "look", card),
                              NewMessage("g1", "b", "c2", "video", 4, None, {"id": "v1", "url": "https://v/1"}),
                              msg("g1", "b", "c3")])
    assert sorted(await store.messages_with_video("v9")) == [("d1", 1), ("g1", 1)]
    await store.unsend("d1", 1)
    assert await store.messages_with_video("v9") == [("g1", 1)]
    assert await store.revoked_before("a") == 0
    await store.revoke("a", 500)
    await store.revoke("a", 400)  # never moves back
    assert await store.revoked_before("a") == 500


async def test_revocations_of_many_users_in_one_read(store: Store) -> None:
    """The hub's periodic re-check reads its connected users' revocations in chunks."""
    users = [f"u{i}" for i in range(600)]  # more than one SQLite chunk
    await store.revoke("u7", 500)
    await store.revoke("u599", 900)
    await store.revoke("elsewhere", 100)
    assert await store.revocations(users) == {"u7": 500, "u599": 900}
    assert await store.revocations([]) == {}


async def test_processes_opening_a_new_sqlite_file_together_migrate_once(tmp_path: Path) -> None:
    """Workers started together race to create the schema: each step runs once."""
    import multiprocessing

    path = tmp_path / "race.db"
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_open_store, args=(str(path),)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    store = SQLiteStore(path)
    await store.open()
    assert await store.migrate() == len(SQLITE_MIGRATIONS)
    await store.close()


def _open_store(path: str) -> None:
    async def run() -> None:
        store = SQLiteStore(path)
        await store.open()
        await store.close()

    asyncio.run(run())
