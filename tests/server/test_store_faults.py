"""When the store fails, senders get ``unavailable``, nothing unstored is acknowledged,
and the hub recovers by itself when the store does."""

from __future__ import annotations

import asyncpg
from services import fresh_schema, require
from wire import Dial, HubFactory, history_all


async def test_store_failure_answers_unavailable_and_recovers(
    hub_factory: HubFactory, dial: Dial
) -> None:
    async with fresh_schema(require("postgres")) as dsn:
        hub = await hub_factory(database_url=dsn, migrate_on_start=True)
        alice, bob = await dial(hub.url, "alice"), await dial(hub.url, "bob")
        conv = (await alice.ok("send", to="bob", cmid="before", text="stored"))["conv"]
        admin = await asyncpg.connect(dsn)
        try:
            # A real fault in the real database: the table the writer appends to is gone.
            await admin.execute("ALTER TABLE messages RENAME TO messages_away")
            failed = await alice.call("send", conv=conv, cmid="during", text="lost?")
            assert (failed["t"], failed["code"]) == ("error", "unavailable")
            assert "retry with the same cmid" in failed["message"]
            await admin.execute("ALTER TABLE messages_away RENAME TO messages")
        finally:
            await admin.close()
        # Nothing unacknowledged was stored; the retry with the same cmid is.
        again = await alice.ok("send", conv=conv, cmid="during", text="lost?")
        assert again["seq"] == 2
        texts = [m["text"] for m in await history_all(bob, conv)]
        assert texts == ["stored", "lost?"]
        assert (await bob.event("msg", seq=2))["cmid"] == "during"


async def test_a_dm_the_store_cannot_create_answers_unavailable(hub_factory: HubFactory,
                                                               dial: Dial) -> None:
    """The first message to someone writes their DM outside the group commit."""
    async with fresh_schema(require("postgres")) as dsn:
        hub = await hub_factory(database_url=dsn, migrate_on_start=True)
        alice, carol = await dial(hub.url, "alice"), await dial(hub.url, "carol")
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute("ALTER TABLE members RENAME TO members_away")
            failed = await alice.call("send", to="carol", cmid="first", text="hello")
            assert (failed["t"], failed["code"]) == ("error", "unavailable")
            assert "retry with the same cmid" in failed["message"]
            await admin.execute("ALTER TABLE members_away RENAME TO members")
        finally:
            await admin.close()
        again = await alice.ok("send", to="carol", cmid="first", text="hello")
        assert again["seq"] == 1
        assert (await carol.event("conv"))["conv"] == again["conv"]
        assert (await carol.event("msg", seq=1))["text"] == "hello"
