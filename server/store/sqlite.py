"""The embedded default store: one SQLite file in WAL mode, through aiosqlite.

One connection writes and one reads, so history and welcome queries never wait
behind a commit. Writes take ``BEGIN IMMEDIATE``, which also makes several hub
processes sharing one file safe; they queue first on an ``flock`` of
``<file>-lock``, retried within a millisecond (SQLite's own lock is retried
after 1, 2, 5, 10 ms and more).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson

from .base import (
    Appended,
    Conversation,
    ConversationKind,
    ConversationSummary,
    NewMessage,
    ReactionSummary,
    Role,
    SocialRecord,
    StoredMessage,
    StoreUnavailable,
    schema_newer,
)

log = logging.getLogger("clipwire.store")
LOCK_WAIT_S = 5.0  # as long as SQLite's busy timeout

# Each entry upgrades the schema by one version (PRAGMA user_version).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        last_seq INTEGER NOT NULL DEFAULT 0,
        created_ts INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE members (
        conv TEXT NOT NULL,
        user TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'member',
        joined_ts INTEGER NOT NULL,
        read_seq INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (conv, user)
    ) WITHOUT ROWID;
    CREATE INDEX members_by_user ON members (user, conv);
    CREATE TABLE messages (
        conv TEXT NOT NULL,
        seq INTEGER NOT NULL,
        sender TEXT NOT NULL,
        cmid TEXT NOT NULL,
        ts INTEGER NOT NULL,
        kind TEXT NOT NULL,
        text TEXT,
        video BLOB,
        reply BLOB,
        unsent INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (conv, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX messages_by_cmid ON messages (conv, sender, cmid);
    """,
    """
    CREATE TABLE friendships (
        low TEXT NOT NULL,
        high TEXT NOT NULL,
        state TEXT NOT NULL,
        requester TEXT,
        ts INTEGER NOT NULL,
        PRIMARY KEY (low, high)
    ) WITHOUT ROWID;
    CREATE INDEX friendships_by_high ON friendships (high);
    CREATE TABLE blocks (
        blocker TEXT NOT NULL,
        blocked TEXT NOT NULL,
        ts INTEGER NOT NULL,
        PRIMARY KEY (blocker, blocked)
    ) WITHOUT ROWID;
    CREATE INDEX blocks_by_blocked ON blocks (blocked);
    CREATE TABLE reactions (
        conv TEXT NOT NULL,
        seq INTEGER NOT NULL,
        user TEXT NOT NULL,
        emoji TEXT NOT NULL,
        at_ms INTEGER,
        ts INTEGER NOT NULL,
        PRIMARY KEY (conv, seq, user, emoji)
    ) WITHOUT ROWID;
    CREATE TABLE last_seen (
        user TEXT PRIMARY KEY,
        ts INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    """
    ALTER TABLE messages ADD COLUMN video_id TEXT;
    UPDATE messages SET video_id = json_extract(video, '$.id') WHERE video IS NOT NULL;
    CREATE INDEX messages_by_video ON messages (video_id) WHERE video_id IS NOT NULL;
    CREATE TABLE revocations (
        user TEXT PRIMARY KEY,
        before_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
)

_MESSAGE_COLUMNS = "conv, seq, sender, cmid, ts, kind, text, video, reply, unsent"
_T = TypeVar("_T")
_JOINED_COLUMNS = ", ".join(f"m.{c.strip()}" for c in _MESSAGE_COLUMNS.split(","))
_CHUNK = 250  # keys per IN (...) query, well under SQLite's variable limit


class SQLiteStore:
    """A ``Store`` on one SQLite file."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL",
                 lock_wait_s: float = LOCK_WAIT_S) -> None:
        self.path = str(path)
        self.synchronous = synchronous
        self.lock_wait_s = lock_wait_s
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._lock_fd: int | None = None

    def _open_lock(self) -> None:
        """Open the sidecar file whose ``flock`` queues the writers of every process.

        Processes sharing the file (nodes, workers) would otherwise meet on
        SQLite's own write lock, whose busy handler polls: a writer that finds it
        taken sleeps 1, 2, 5, 10 ms and more before trying again, so two busy
        nodes spent milliseconds per commit asleep. Here a waiting writer retries
        within 0.1 to 0.5 ms, and gives up after ``lock_wait_s`` (a process stopped
        mid-write must not hang every other writer, nor their shutdown).
        """
        if self.path != ":memory:" and self._lock_fd is None:
            self._lock_fd = os.open(f"{self.path}-lock", os.O_RDWR | os.O_CREAT, 0o644)

    async def open(self) -> None:
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._open_lock()
            self._writer = await self._connect()
            await self.migrate()
            self._reader = await self._connect()
        except BaseException as exc:
            await self.close()  # a connection left open keeps its thread, and the process, alive
            if isinstance(exc, OSError | sqlite3.Error):
                raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
            raise

    async def _connect(self) -> aiosqlite.Connection:
        conn = aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn
        except BaseException:
            # aiosqlite stops its thread without waiting for it; wait here, or it answers
            # on an event loop already closed by then: a traceback as the process exits.
            await asyncio.to_thread(conn._thread.join, 5)
            raise
        # The busy timeout first: switching a fresh file to WAL takes its lock, and
        # nodes opening one file together must wait for each other, not fail.
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={self.synchronous}")
        await conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    async def migrate(self) -> int:
        """Bring the schema up to date; returns the version it ends at."""
        w = self._w
        async with self._write_lock:
            while True:
                # The version is read under the write lock, so processes sharing the
                # file (workers starting together) migrate each step exactly once.
                await w.execute("BEGIN IMMEDIATE")
                try:
                    (version,) = await self._one(w, "PRAGMA user_version")
                    if version > len(MIGRATIONS):
                        raise schema_newer(version, len(MIGRATIONS))
                    if version >= len(MIGRATIONS):
                        await w.execute("COMMIT")
                        return len(MIGRATIONS)
                    log.info("migrating %s to schema version %d", self.path, version + 1)
                    for statement in MIGRATIONS[version].split(";"):
                        if statement.strip():
                            await w.execute(statement)
                    await w.execute(f"PRAGMA user_version={version + 1}")
                    await w.execute("COMMIT")
                except BaseException:
                    await self._rollback()
                    raise

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def _w(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        return self._writer

    @property
    def _r(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreUnavailable("store is not open")
        return self._reader

    # Each read runs and finishes in one call: a statement left open on the
    # shared reader would pin an old snapshot for every other coroutine.
    @staticmethod
    async def _one(conn: aiosqlite.Connection, sql: str, *args: Any) -> Any:
        rows = await conn.execute_fetchall(sql, args)
        return next(iter(rows), None)

    @staticmethod
    async def _all(conn: aiosqlite.Connection, sql: str, *args: Any) -> list[Any]:
        return list(await conn.execute_fetchall(sql, args))

    async def _transaction(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        def body(db: sqlite3.Connection) -> None:
            for sql, args in statements:
                db.execute(sql, args)

        await self._write(body)

    async def _rollback(self) -> None:
        try:
            await self._w.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # -- messages -----------------------------------------------------------

    async def append_batch(self, items: Sequence[NewMessage]) -> list[Appended | None]:
        return await self._write(lambda db: self._append_rows(db, items))

    async def _write(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``body`` in one write transaction on the writer's thread: one hop, not one per statement.

        aiosqlite hops to its thread and back for every statement; a group
        commit is six statements, and each hop wakes the event loop, which
        showed in both throughput and latency. ``Connection._execute`` is
        aiosqlite's own way to queue a call on that thread (pinned in pyproject).
        """
        async with self._write_lock:
            w = self._w
            result: _T = await w._execute(self._transact, w._conn, body)  # type: ignore[no-untyped-call]
            return result

    def _transact(self, db: sqlite3.Connection, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """On the writer's thread: the event loop never waits for the lock."""
        fd = self._lock_fd
        if fd is None:
            return self._transact_locked(db, body)
        self._take_lock(fd)
        try:
            return self._transact_locked(db, body)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _take_lock(self, fd: int) -> None:
        pause, deadline = 0.0001, 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                now = time.monotonic()
                if not deadline:
                    deadline = now + self.lock_wait_s
                elif now > deadline:
                    raise StoreUnavailable(
                        f"another process has held the write lock of {self.path} for "
                        f"{self.lock_wait_s:g} s") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.0005)

    @staticmethod
    def _transact_locked(db: sqlite3.Connection, body: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = body(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc
        return result

    def _append_rows(self, db: sqlite3.Connection, items: Sequence[NewMessage]) -> list[Appended | None]:
        """The group commit's statements, inside :meth:`_transact`."""
        results, rows, last = self._plan_batch(db, items)
        if rows:
            db.executemany(
                f"INSERT INTO messages ({_MESSAGE_COLUMNS}, video_id) VALUES (?,?,?,?,?,?,?,?,?,0,?)", rows
            )
            db.executemany("UPDATE conversations SET last_seq = ? WHERE id = ?",
                           [(seq, conv) for conv, seq in last.items()])
        return results

    @staticmethod
    def _plan_batch(
        db: sqlite3.Connection, items: Sequence[NewMessage]
    ) -> tuple[list[Appended | None], list[tuple[Any, ...]], dict[str, int]]:
        """Assign seqs inside the open transaction; find retries by cmid."""
        convs = list(dict.fromkeys(item.conv for item in items))
        seqs: dict[str, int] = {}
        for chunk in _chunks(convs):
            marks = ",".join("?" * len(chunk))
            for conv, seq in db.execute(f"SELECT id, last_seq FROM conversations WHERE id IN ({marks})",
                                        chunk):
                seqs[conv] = seq
        seen: dict[tuple[str, str, str], StoredMessage] = {}
        keys = list(dict.fromkeys((i.conv, i.sender, i.cmid) for i in items))
        for chunk in _chunks(keys):
            marks = ",".join(["(?,?,?)"] * len(chunk))
            flat = [v for key in chunk for v in key]
            # A join, not ``(conv, sender, cmid) IN (VALUES ...)``: SQLite plans that row-value
            # IN as a scan of every message once it holds more than one key.
            for row in db.execute(
                f"WITH k(conv, sender, cmid) AS (VALUES {marks}) SELECT {_JOINED_COLUMNS} FROM k "
                "CROSS JOIN messages AS m ON m.conv = k.conv AND m.sender = k.sender AND m.cmid = k.cmid",
                flat,
            ):
                msg = _message(row)
                seen[(msg.conv, msg.sender, msg.cmid)] = msg
        results: list[Appended | None] = []
        rows: list[tuple[Any, ...]] = []
        last: dict[str, int] = {}
        for item in items:
            key = (item.conv, item.sender, item.cmid)
            if key in seen:
                results.append(Appended(seen[key], duplicate=True))
                continue
            if item.conv not in seqs:
                results.append(None)
                continue
            seq = seqs[item.conv] = seqs[item.conv] + 1
            last[item.conv] = seq
            msg = StoredMessage(item.conv, seq, item.sender, item.cmid, item.kind, item.ts,
                                item.text, item.video, item.reply)
            seen[key] = msg
            results.append(Appended(msg, duplicate=False))
            rows.append((item.conv, seq, item.sender, item.cmid, item.ts, item.kind, item.text,
                         _blob(item.video), _blob(item.reply),
                         item.video.get("id") if item.video else None))
        return results, rows, last

    async def get_message(self, conv: str, seq: int) -> StoredMessage | None:
        row = await self._one(
            self._r, f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conv = ? AND seq = ?", conv, seq
        )
        return None if row is None else _message(row)

    async def history(self, conv: str, before: int | None, limit: int) -> list[StoredMessage]:
        bound = before if before is not None else 2**63 - 1
        rows = await self._all(
            self._r,
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conv = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT ?",
            conv, bound, limit,
        )
        return [_message(row) for row in reversed(rows)]

    async def messages_after(self, conv: str, after: int, limit: int) -> list[StoredMessage]:
        rows = await self._all(
            self._r,
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conv = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            conv, after, limit,
        )
        return [_message(row) for row in rows]

    async def messages_with_video(self, video_id: str) -> list[tuple[str, int]]:
        rows = await self._all(
            self._r, "SELECT conv, seq FROM messages WHERE video_id = ? AND unsent = 0", video_id)
        return [(conv, seq) for conv, seq in rows]

    async def revoke(self, user: str, before_ms: int) -> None:
        await self._transaction([(
            "INSERT INTO revocations (user, before_ms) VALUES (?, ?) "
            "ON CONFLICT DO UPDATE SET before_ms = MAX(before_ms, excluded.before_ms)",
            (user, before_ms))])

    async def revoked_before(self, user: str) -> int:
        row = await self._one(self._r, "SELECT before_ms FROM revocations WHERE user = ?", user)
        return int(row[0]) if row else 0

    async def revocations(self, users: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(list(users)):
            marks = ",".join("?" * len(chunk))
            rows = await self._all(self._r, "SELECT user, before_ms FROM revocations "
                                   f"WHERE user IN ({marks})", *chunk)
            found.update((user, int(before)) for user, before in rows)
        return found

    async def unsend(self, conv: str, seq: int) -> None:
        await self._transaction([
            ("UPDATE messages SET unsent = 1, text = NULL, video = NULL, reply = NULL, video_id = NULL "
             "WHERE conv = ? AND seq = ?", (conv, seq)),
            ("DELETE FROM reactions WHERE conv = ? AND seq = ?", (conv, seq)),
        ])

    async def set_read(self, conv: str, user: str, seq: int) -> int:
        await self._transaction([
            ("UPDATE members SET read_seq = MAX(read_seq, ?) WHERE conv = ? AND user = ?",
             (seq, conv, user)),
        ])
        row = await self._one(self._r, "SELECT read_seq FROM members WHERE conv = ? AND user = ?",
                              conv, user)
        return int(row[0]) if row else 0

    async def set_reaction(self, conv: str, seq: int, user: str, emoji: str, on: bool,
                           at_ms: int | None, ts: int) -> bool:
        async with self._write_lock:
            w = self._w
            try:
                if on:
                    cur = await w.execute(
                        "INSERT INTO reactions (conv, seq, user, emoji, at_ms, ts) VALUES (?,?,?,?,?,?) "
                        "ON CONFLICT DO UPDATE SET at_ms = excluded.at_ms, ts = excluded.ts "
                        "WHERE reactions.at_ms IS NOT excluded.at_ms",
                        (conv, seq, user, emoji, at_ms, ts),
                    )
                else:
                    cur = await w.execute(
                        "DELETE FROM reactions WHERE conv = ? AND seq = ? AND user = ? AND emoji = ?",
                        (conv, seq, user, emoji),
                    )
                return cur.rowcount > 0
            except sqlite3.Error as exc:
                raise StoreUnavailable(str(exc)) from exc

    async def reactions(self, conv: str, seqs: Sequence[int], viewer: str) -> list[ReactionSummary]:
        if not seqs:
            return []
        rows = await self._all(
            self._r,
            "SELECT seq, emoji, COUNT(*), MAX(user = ?), "
            "GROUP_CONCAT(DISTINCT at_ms) FROM reactions "
            "WHERE conv = ? AND seq BETWEEN ? AND ? GROUP BY seq, emoji ORDER BY seq, MIN(ts)",
            viewer, conv, min(seqs), max(seqs),
        )
        wanted = set(seqs)
        return [
            ReactionSummary(seq, emoji, count, bool(me),
                            tuple(sorted(int(v) for v in moments.split(",")))[:20] if moments else ())
            for seq, emoji, count, me, moments in rows if seq in wanted
        ]

    # -- social graph -------------------------------------------------------

    async def social(self, user: str) -> SocialRecord:
        record = SocialRecord()
        for low, high, state, requester in await self._all(
            self._r,
            "SELECT low, high, state, requester FROM friendships WHERE low = ? "
            "UNION ALL SELECT low, high, state, requester FROM friendships WHERE high = ?",
            user, user,
        ):
            other = high if low == user else low
            if state == "friends":
                record.friends.add(other)
            elif requester == user:
                record.requests_out.add(other)
            else:
                record.requests_in.add(other)
        for blocker, blocked in await self._all(
            self._r,
            "SELECT blocker, blocked FROM blocks WHERE blocker = ? "
            "UNION ALL SELECT blocker, blocked FROM blocks WHERE blocked = ?",
            user, user,
        ):
            if blocker == user:
                record.blocking.add(blocked)
            else:
                record.blocked_by.add(blocker)
        return record

    async def set_friendship(self, a: str, b: str, state: str | None, requester: str | None,
                             ts: int) -> None:
        low, high = sorted((a, b))
        if state is None:
            await self._transaction([
                ("DELETE FROM friendships WHERE low = ? AND high = ?", (low, high)),
            ])
            return
        await self._transaction([
            ("INSERT INTO friendships (low, high, state, requester, ts) VALUES (?,?,?,?,?) "
             "ON CONFLICT DO UPDATE SET state = excluded.state, requester = excluded.requester, "
             "ts = excluded.ts", (low, high, state, requester, ts)),
        ])

    async def set_block(self, blocker: str, blocked: str, on: bool, ts: int) -> None:
        if on:
            await self._transaction([
                ("INSERT OR IGNORE INTO blocks (blocker, blocked, ts) VALUES (?,?,?)",
                 (blocker, blocked, ts)),
            ])
        else:
            await self._transaction([
                ("DELETE FROM blocks WHERE blocker = ? AND blocked = ?", (blocker, blocked)),
            ])

    async def set_last_seen(self, seen: dict[str, int]) -> None:
        if seen:
            await self._transaction([
                ("INSERT INTO last_seen (user, ts) VALUES (?, ?) "
                 "ON CONFLICT DO UPDATE SET ts = MAX(ts, excluded.ts)", (user, ts))
                for user, ts in seen.items()
            ])

    async def group_counts(self, users: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for chunk in _chunks(list(users)):
            marks = ",".join("?" * len(chunk))
            for user, count in await self._all(
                self._r,
                "SELECT m.user, COUNT(*) FROM members m JOIN conversations c ON c.id = m.conv "
                f"WHERE c.kind = 'group' AND m.user IN ({marks}) GROUP BY m.user",
                *chunk,
            ):
                counts[user] = count
        return counts

    async def share_conversation(self, a: str, b: str) -> bool:
        row = await self._one(
            self._r,
            "SELECT 1 FROM members x JOIN members y ON x.conv = y.conv "
            "WHERE x.user = ? AND y.user = ? LIMIT 1",
            a, b,
        )
        return row is not None

    async def last_seen(self, users: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(list(users)):
            marks = ",".join("?" * len(chunk))
            for user, ts in await self._all(
                self._r, f"SELECT user, ts FROM last_seen WHERE user IN ({marks})", *chunk
            ):
                found[user] = ts
        return found

    # -- conversations ------------------------------------------------------

    async def ensure_dm(self, conv: str, a: str, b: str, ts: int) -> bool:
        def body(db: sqlite3.Connection) -> bool:
            cur = db.execute("INSERT OR IGNORE INTO conversations (id, kind, created_ts) VALUES (?, 'dm', ?)",
                             (conv, ts))
            if cur.rowcount != 1:
                return False
            db.executemany("INSERT OR IGNORE INTO members (conv, user, joined_ts) VALUES (?, ?, ?)",
                           [(conv, a, ts), (conv, b, ts)])
            return True

        return await self._write(body)

    async def create_group(self, conv: str, title: str, owner: str, members: Iterable[str],
                           ts: int) -> None:
        statements: list[tuple[str, Sequence[Any]]] = [
            ("INSERT INTO conversations (id, kind, title, created_ts) VALUES (?, 'group', ?, ?)",
             (conv, title, ts)),
            ("INSERT INTO members (conv, user, role, joined_ts) VALUES (?, ?, 'owner', ?)",
             (conv, owner, ts)),
        ]
        statements += [
            ("INSERT OR IGNORE INTO members (conv, user, joined_ts) VALUES (?, ?, ?)", (conv, u, ts))
            for u in members if u != owner
        ]
        await self._transaction(statements)

    async def add_members(self, conv: str, users: Iterable[str], ts: int) -> None:
        await self._transaction([
            ("INSERT OR IGNORE INTO members (conv, user, joined_ts) VALUES (?, ?, ?)", (conv, u, ts))
            for u in users
        ])

    async def remove_members(self, conv: str, users: Iterable[str]) -> None:
        await self._transaction([
            ("DELETE FROM members WHERE conv = ? AND user = ?", (conv, u)) for u in users
        ])

    async def set_role(self, conv: str, user: str, role: Role) -> None:
        await self._transaction([
            ("UPDATE members SET role = ? WHERE conv = ? AND user = ?", (role, conv, user))
        ])

    async def load_conversation(self, conv: str) -> Conversation | None:
        row = await self._one(
            self._r, "SELECT kind, title, last_seq FROM conversations WHERE id = ?", conv
        )
        if row is None:
            return None
        members = await self._all(
            self._r, "SELECT user, role FROM members WHERE conv = ? ORDER BY joined_ts, user", conv
        )
        return Conversation(conv, row[0], row[1], row[2], {u: r for u, r in members})

    async def user_conversations(self, user: str) -> list[ConversationSummary]:
        rows = await self._all(
            self._r,
            """
            SELECT c.id, c.kind, c.title, c.last_seq, m.read_seq,
                   (SELECT COUNT(*) FROM messages x
                     WHERE x.conv = c.id AND x.seq > m.read_seq AND x.sender <> m.user)
              FROM members m JOIN conversations c ON c.id = m.conv
             WHERE m.user = ?
             ORDER BY c.last_seq DESC, c.id
            """,
            user,
        )
        convs = [row[0] for row in rows]
        members: dict[str, list[str]] = {conv: [] for conv in convs}
        owners: dict[str, str] = {}
        for chunk in _chunks(convs):
            marks = ",".join("?" * len(chunk))
            for conv, member, role in await self._all(
                self._r,
                f"SELECT conv, user, role FROM members WHERE conv IN ({marks}) ORDER BY joined_ts, user",
                *chunk,
            ):
                members[conv].append(member)
                if role == "owner":
                    owners[conv] = member
        kinds: dict[str, ConversationKind] = {"dm": "dm", "group": "group"}
        return [
            ConversationSummary(conv, kinds[kind], title, tuple(members[conv]), last_seq,
                                read_seq, unread, owners.get(conv))
            for conv, kind, title, last_seq, read_seq, unread in rows
        ]


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _blob(value: dict[str, Any] | None) -> bytes | None:
    return None if value is None else orjson.dumps(value)


def _message(row: Any) -> StoredMessage:
    conv, seq, sender, cmid, ts, kind, text, video, reply, unsent = row
    return StoredMessage(
        conv, seq, sender, cmid, kind, ts, text,
        None if video is None else orjson.loads(video),
        None if reply is None else orjson.loads(reply),
        bool(unsent),
    )
