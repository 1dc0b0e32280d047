"""The shared store for several hub nodes: PostgreSQL through an asyncpg pool.

Seqs stay gap-free with writers on many nodes because a batch locks the rows
of the conversations it appends to (``FOR UPDATE``, in id order so two batches
never deadlock) before it reads their ``last_seq``; retries by cmid are found
under the same lock. One transaction per batch, as with SQLite.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import orjson

from .base import (
    Appended,
    Conversation,
    ConversationKind,
    ConversationSummary,
    NewMessage,
    ReactionSummary,
    Role,
    SchemaOutOfDate,
    SocialRecord,
    StoredMessage,
    StoreUnavailable,
    schema_newer,
)

log = logging.getLogger("clipwire.store")

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        last_seq BIGINT NOT NULL DEFAULT 0,
        created_ts BIGINT NOT NULL
    );
    CREATE TABLE members (
        conv TEXT NOT NULL,
        "user" TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'member',
        joined_ts BIGINT NOT NULL,
        read_seq BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (conv, "user")
    );
    CREATE INDEX members_by_user ON members ("user", conv);
    CREATE TABLE messages (
        conv TEXT NOT NULL,
        seq BIGINT NOT NULL,
        sender TEXT NOT NULL,
        cmid TEXT NOT NULL,
        ts BIGINT NOT NULL,
        kind TEXT NOT NULL,
        text TEXT,
        video BYTEA,
        reply BYTEA,
        unsent BOOLEAN NOT NULL DEFAULT FALSE,
        PRIMARY KEY (conv, seq)
    );
    CREATE UNIQUE INDEX messages_by_cmid ON messages (conv, sender, cmid);
    """,
    """
    CREATE TABLE friendships (
        low TEXT NOT NULL,
        high TEXT NOT NULL,
        state TEXT NOT NULL,
        requester TEXT,
        ts BIGINT NOT NULL,
        PRIMARY KEY (low, high)
    );
    CREATE INDEX friendships_by_high ON friendships (high);
    CREATE TABLE blocks (
        blocker TEXT NOT NULL,
        blocked TEXT NOT NULL,
        ts BIGINT NOT NULL,
        PRIMARY KEY (blocker, blocked)
    );
    CREATE INDEX blocks_by_blocked ON blocks (blocked);
    CREATE TABLE reactions (
        conv TEXT NOT NULL,
        seq BIGINT NOT NULL,
        "user" TEXT NOT NULL,
        emoji TEXT NOT NULL,
        at_ms BIGINT,
        ts BIGINT NOT NULL,
        PRIMARY KEY (conv, seq, "user", emoji)
    );
    CREATE TABLE last_seen (
        "user" TEXT PRIMARY KEY,
        ts BIGINT NOT NULL
    );
    """,
    """
    ALTER TABLE messages ADD COLUMN video_id TEXT;
    UPDATE messages SET video_id = convert_from(video, 'UTF8')::json->>'id' WHERE video IS NOT NULL;
    CREATE INDEX messages_by_video ON messages (video_id) WHERE video_id IS NOT NULL;
    CREATE TABLE revocations (
        "user" TEXT PRIMARY KEY,
        before_ms BIGINT NOT NULL
    );
    """,
)

CONNECT_TIMEOUT_S = 5.0  # to connect at start-up: asyncpg's own default is 60 s
_COLUMNS = "conv, seq, sender, cmid, ts, kind, text, video, reply, unsent"
# Concurrent CREATE TABLE IF NOT EXISTS can still fail (pg_type unique violation):
# migrations take this lock, keyed by schema, so that starting nodes together is safe.
_MIGRATION_LOCK = "SELECT pg_advisory_lock(hashtext('clipwire.migrate.' || current_schema()))"
_MIGRATION_UNLOCK = "SELECT pg_advisory_unlock(hashtext('clipwire.migrate.' || current_schema()))"


class PostgresStore:
    """A ``Store`` on PostgreSQL, shared by every node that points at it."""

    def __init__(self, dsn: str, *, migrate_on_open: bool = False, min_size: int = 2,
                 max_size: int = 10) -> None:
        self.dsn = dsn
        self.migrate_on_open = migrate_on_open
        self._sizes = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        try:
            # A bounded connect: a host that takes the connection but never answers
            # (a wrong port, a stuck proxy) must fail the start, not hang it.
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=self._sizes[0], max_size=self._sizes[1],
                timeout=CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            why = exc or f"no answer within {CONNECT_TIMEOUT_S:.0f} s"
            raise StoreUnavailable(f"cannot reach PostgreSQL at {self.dsn}: {why}") from exc
        if self.migrate_on_open:
            await self.migrate()
        version = await self.schema_version()
        if version > len(MIGRATIONS):
            raise schema_newer(version, len(MIGRATIONS))
        if version < len(MIGRATIONS):
            raise SchemaOutOfDate(
                f"the database is at schema version {version}, this hub needs {len(MIGRATIONS)}: "
                "run `clipwire migrate` (or start with --migrate-on-start)"
            )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("store is not open")
        return self._pool

    async def schema_version(self) -> int:
        async with self.pool.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass('clipwire_schema') IS NOT NULL")
            if not exists:
                return 0
            return int(await conn.fetchval("SELECT version FROM clipwire_schema"))

    async def migrate(self) -> int:
        """Bring the schema up to date, one version per transaction; safe to race.

        Nodes started together may all migrate at once: a session advisory lock
        (one per schema) lets one of them create the schema table and run the
        migrations while the others wait, then find the schema current.
        """
        async with self.pool.acquire() as conn:
            await conn.execute(_MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS clipwire_schema (version INT NOT NULL);"
                    "INSERT INTO clipwire_schema SELECT 0 "
                    "WHERE NOT EXISTS (SELECT 1 FROM clipwire_schema)"
                )
                while True:
                    async with conn.transaction():
                        version = int(await conn.fetchval(
                            "SELECT version FROM clipwire_schema FOR UPDATE"))
                        if version >= len(MIGRATIONS):
                            return version
                        log.info("migrating PostgreSQL to schema version %d", version + 1)
                        await conn.execute(MIGRATIONS[version])
                        await conn.execute("UPDATE clipwire_schema SET version = $1", version + 1)
            finally:
                await conn.execute(_MIGRATION_UNLOCK)

    async def _run(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                for sql, args in statements:
                    await conn.execute(sql, *args)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return list(await self.pool.fetch(sql, *args))
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    # -- messages -----------------------------------------------------------

    async def append_batch(self, items: Sequence[NewMessage]) -> list[Appended | None]:
        convs = sorted({item.conv for item in items})
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                seqs = {row["id"]: row["last_seq"] for row in await conn.fetch(
                    "SELECT id, last_seq FROM conversations WHERE id = ANY($1::text[]) "
                    "ORDER BY id FOR UPDATE", convs)}
                keys = list(dict.fromkeys((i.conv, i.sender, i.cmid) for i in items))
                seen = {(m.conv, m.sender, m.cmid): m for m in map(_message, await conn.fetch(
                    f"SELECT {_COLUMNS} FROM messages m JOIN unnest($1::text[], $2::text[], $3::text[]) "
                    "AS k(conv, sender, cmid) USING (conv, sender, cmid)",
                    [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]))}
                results: list[Appended | None] = []
                rows: list[tuple[Any, ...]] = []
                for item in items:
                    key = (item.conv, item.sender, item.cmid)
                    if key in seen:
                        results.append(Appended(seen[key], duplicate=True))
                        continue
                    if item.conv not in seqs:
                        results.append(None)
                        continue
                    seq = seqs[item.conv] = seqs[item.conv] + 1
                    msg = StoredMessage(item.conv, seq, item.sender, item.cmid, item.kind, item.ts,
                                        item.text, item.video, item.reply)
                    seen[key] = msg
                    results.append(Appended(msg, duplicate=False))
                    rows.append((item.conv, seq, item.sender, item.cmid, item.ts, item.kind,
                                 item.text, _blob(item.video), _blob(item.reply), False,
                                 item.video.get("id") if item.video else None))
                if rows:
                    await conn.copy_records_to_table(
                        "messages", records=rows,
                        columns=[*(c.strip() for c in _COLUMNS.split(",")), "video_id"],
                    )
                    await conn.executemany(
                        "UPDATE conversations SET last_seq = $1 WHERE id = $2",
                        [(seqs[c], c) for c in convs if c in seqs],
                    )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return results

    async def get_message(self, conv: str, seq: int) -> StoredMessage | None:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM messages WHERE conv = $1 AND seq = $2",
                                 conv, seq)
        return _message(rows[0]) if rows else None

    async def history(self, conv: str, before: int | None, limit: int) -> list[StoredMessage]:
        bound = before if before is not None else 2**63 - 1
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM messages WHERE conv = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            conv, bound, limit)
        return [_message(row) for row in reversed(rows)]

    async def messages_after(self, conv: str, after: int, limit: int) -> list[StoredMessage]:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM messages WHERE conv = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            conv, after, limit)
        return [_message(row) for row in rows]

    async def messages_with_video(self, video_id: str) -> list[tuple[str, int]]:
        rows = await self._fetch(
            "SELECT conv, seq FROM messages WHERE video_id = $1 AND NOT unsent", video_id)
        return [(row["conv"], row["seq"]) for row in rows]

    async def revoke(self, user: str, before_ms: int) -> None:
        await self._run([(
            'INSERT INTO revocations ("user", before_ms) VALUES ($1, $2) ON CONFLICT ("user") '
            "DO UPDATE SET before_ms = GREATEST(revocations.before_ms, excluded.before_ms)",
            (user, before_ms))])

    async def revoked_before(self, user: str) -> int:
        rows = await self._fetch('SELECT before_ms FROM revocations WHERE "user" = $1', user)
        return int(rows[0]["before_ms"]) if rows else 0

    async def revocations(self, users: Sequence[str]) -> dict[str, int]:
        rows = await self._fetch(
            'SELECT "user", before_ms FROM revocations WHERE "user" = ANY($1::text[])', list(users))
        return {row["user"]: int(row["before_ms"]) for row in rows}

    async def unsend(self, conv: str, seq: int) -> None:
        await self._run([
            ("UPDATE messages SET unsent = TRUE, text = NULL, video = NULL, reply = NULL, "
             "video_id = NULL "
             "WHERE conv = $1 AND seq = $2", (conv, seq)),
            ("DELETE FROM reactions WHERE conv = $1 AND seq = $2", (conv, seq)),
        ])

    async def set_read(self, conv: str, user: str, seq: int) -> int:
        rows = await self._fetch(
            'UPDATE members SET read_seq = GREATEST(read_seq, $1) WHERE conv = $2 AND "user" = $3 '
            "RETURNING read_seq", seq, conv, user)
        return int(rows[0]["read_seq"]) if rows else 0

    async def set_reaction(self, conv: str, seq: int, user: str, emoji: str, on: bool,
                           at_ms: int | None, ts: int) -> bool:
        if on:
            rows = await self._fetch(
                'INSERT INTO reactions (conv, seq, "user", emoji, at_ms, ts) VALUES ($1,$2,$3,$4,$5,$6) '
                'ON CONFLICT (conv, seq, "user", emoji) DO UPDATE SET at_ms = excluded.at_ms, '
                "ts = excluded.ts WHERE reactions.at_ms IS DISTINCT FROM excluded.at_ms RETURNING 1",
                conv, seq, user, emoji, at_ms, ts)
        else:
            rows = await self._fetch(
                'DELETE FROM reactions WHERE conv = $1 AND seq = $2 AND "user" = $3 AND emoji = $4 '
                "RETURNING 1", conv, seq, user, emoji)
        return bool(rows)

    async def reactions(self, conv: str, seqs: Sequence[int], viewer: str) -> list[ReactionSummary]:
        if not seqs:
            return []
        rows = await self._fetch(
            'SELECT seq, emoji, COUNT(*) AS n, BOOL_OR("user" = $1) AS me, '
            "ARRAY_AGG(DISTINCT at_ms) FILTER (WHERE at_ms IS NOT NULL) AS moments "
            "FROM reactions WHERE conv = $2 AND seq = ANY($3::bigint[]) "
            "GROUP BY seq, emoji ORDER BY seq, MIN(ts)",
            viewer, conv, list(seqs))
        return [ReactionSummary(r["seq"], r["emoji"], r["n"], r["me"],
                                tuple(sorted(r["moments"] or ()))[:20]) for r in rows]

    # -- social graph -------------------------------------------------------

    async def social(self, user: str) -> SocialRecord:
        record = SocialRecord()
        for row in await self._fetch(
            "SELECT low, high, state, requester FROM friendships WHERE low = $1 OR high = $1", user
        ):
            other = row["high"] if row["low"] == user else row["low"]
            if row["state"] == "friends":
                record.friends.add(other)
            elif row["requester"] == user:
                record.requests_out.add(other)
            else:
                record.requests_in.add(other)
        for row in await self._fetch(
            "SELECT blocker, blocked FROM blocks WHERE blocker = $1 OR blocked = $1", user
        ):
            if row["blocker"] == user:
                record.blocking.add(row["blocked"])
            else:
                record.blocked_by.add(row["blocker"])
        return record

    async def set_friendship(self, a: str, b: str, state: str | None, requester: str | None,
                             ts: int) -> None:
        low, high = sorted((a, b))
        if state is None:
            await self._run([("DELETE FROM friendships WHERE low = $1 AND high = $2", (low, high))])
            return
        await self._run([(
            "INSERT INTO friendships (low, high, state, requester, ts) VALUES ($1,$2,$3,$4,$5) "
            "ON CONFLICT (low, high) DO UPDATE SET state = excluded.state, "
            "requester = excluded.requester, ts = excluded.ts", (low, high, state, requester, ts))])

    async def set_block(self, blocker: str, blocked: str, on: bool, ts: int) -> None:
        if on:
            await self._run([("INSERT INTO blocks (blocker, blocked, ts) VALUES ($1,$2,$3) "
                              "ON CONFLICT DO NOTHING", (blocker, blocked, ts))])
        else:
            await self._run([("DELETE FROM blocks WHERE blocker = $1 AND blocked = $2",
                              (blocker, blocked))])

    async def set_last_seen(self, seen: dict[str, int]) -> None:
        if seen:
            await self._run([(
                'INSERT INTO last_seen ("user", ts) SELECT * FROM unnest($1::text[], $2::bigint[]) '
                'ON CONFLICT ("user") DO UPDATE SET ts = GREATEST(last_seen.ts, excluded.ts)',
                (list(seen), list(seen.values())))])

    async def last_seen(self, users: Sequence[str]) -> dict[str, int]:
        rows = await self._fetch('SELECT "user", ts FROM last_seen WHERE "user" = ANY($1::text[])',
                                 list(users))
        return {row["user"]: row["ts"] for row in rows}

    async def group_counts(self, users: Sequence[str]) -> dict[str, int]:
        rows = await self._fetch(
            'SELECT m."user", COUNT(*) AS n FROM members m JOIN conversations c ON c.id = m.conv '
            "WHERE c.kind = 'group' AND m.\"user\" = ANY($1::text[]) GROUP BY m.\"user\"",
            list(users))
        return {row["user"]: int(row["n"]) for row in rows}

    async def share_conversation(self, a: str, b: str) -> bool:
        rows = await self._fetch(
            'SELECT 1 FROM members x JOIN members y ON x.conv = y.conv WHERE x."user" = $1 '
            'AND y."user" = $2 LIMIT 1', a, b)
        return bool(rows)

    # -- conversations ------------------------------------------------------

    async def ensure_dm(self, conv: str, a: str, b: str, ts: int) -> bool:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                created = await conn.fetchval(
                    "INSERT INTO conversations (id, kind, created_ts) VALUES ($1, 'dm', $2) "
                    "ON CONFLICT DO NOTHING RETURNING TRUE", conv, ts)
                if created:
                    await conn.executemany(
                        'INSERT INTO members (conv, "user", joined_ts) VALUES ($1, $2, $3) '
                        "ON CONFLICT DO NOTHING", [(conv, a, ts), (conv, b, ts)])
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return bool(created)

    async def create_group(self, conv: str, title: str, owner: str, members: Iterable[str],
                           ts: int) -> None:
        others = [u for u in members if u != owner]
        await self._run([
            ("INSERT INTO conversations (id, kind, title, created_ts) VALUES ($1, 'group', $2, $3)",
             (conv, title, ts)),
            ("INSERT INTO members (conv, \"user\", role, joined_ts) VALUES ($1, $2, 'owner', $3)",
             (conv, owner, ts)),
            ('INSERT INTO members (conv, "user", joined_ts) SELECT $1, u, $3 FROM unnest($2::text[]) u '
             "ON CONFLICT DO NOTHING", (conv, others, ts)),
        ])

    async def add_members(self, conv: str, users: Iterable[str], ts: int) -> None:
        await self._run([
            ('INSERT INTO members (conv, "user", joined_ts) SELECT $1, u, $3 FROM unnest($2::text[]) u '
             "ON CONFLICT DO NOTHING", (conv, list(users), ts)),
        ])

    async def remove_members(self, conv: str, users: Iterable[str]) -> None:
        await self._run([('DELETE FROM members WHERE conv = $1 AND "user" = ANY($2::text[])',
                          (conv, list(users)))])

    async def set_role(self, conv: str, user: str, role: Role) -> None:
        await self._run([('UPDATE members SET role = $1 WHERE conv = $2 AND "user" = $3',
                          (role, conv, user))])

    async def load_conversation(self, conv: str) -> Conversation | None:
        rows = await self._fetch("SELECT kind, title, last_seq FROM conversations WHERE id = $1", conv)
        if not rows:
            return None
        members = await self._fetch(
            'SELECT "user", role FROM members WHERE conv = $1 ORDER BY joined_ts, "user"', conv)
        row = rows[0]
        return Conversation(conv, row["kind"], row["title"], row["last_seq"],
                            {m["user"]: m["role"] for m in members})

    async def user_conversations(self, user: str) -> list[ConversationSummary]:
        rows = await self._fetch(
            """
            SELECT c.id, c.kind, c.title, c.last_seq, m.read_seq,
                   (SELECT COUNT(*) FROM messages x
                     WHERE x.conv = c.id AND x.seq > m.read_seq AND x.sender <> m."user") AS unread
              FROM members m JOIN conversations c ON c.id = m.conv
             WHERE m."user" = $1
             ORDER BY c.last_seq DESC, c.id
            """, user)
        convs = [row["id"] for row in rows]
        members: dict[str, list[str]] = {conv: [] for conv in convs}
        owners: dict[str, str] = {}
        for row in await self._fetch(
            'SELECT conv, "user", role FROM members WHERE conv = ANY($1::text[]) '
            'ORDER BY joined_ts, "user"', convs
        ):
            members[row["conv"]].append(row["user"])
            if row["role"] == "owner":
                owners[row["conv"]] = row["user"]
        kinds: dict[str, ConversationKind] = {"dm": "dm", "group": "group"}
        return [
            ConversationSummary(r["id"], kinds[r["kind"]], r["title"], tuple(members[r["id"]]),
                                r["last_seq"], r["read_seq"], r["unread"], owners.get(r["id"]))
            for r in rows
        ]


def _blob(value: dict[str, Any] | None) -> bytes | None:
    return None if value is None else orjson.dumps(value)


def _message(row: Any) -> StoredMessage:
    return StoredMessage(
        row["conv"], row["seq"], row["sender"], row["cmid"], row["kind"], row["ts"], row["text"],
        None if row["video"] is None else orjson.loads(row["video"]),
        None if row["reply"] is None else orjson.loads(row["reply"]),
        bool(row["unsent"]),
    )
