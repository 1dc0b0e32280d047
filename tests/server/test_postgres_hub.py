"""The hub on the shared PostgreSQL store: the same behaviour as on SQLite."""

from __future__ import annotations

import asyncio
import sys

import pytest
from services import fresh_schema, require
from wire import TRANSPORT, Dial, HubFactory

from clipwire.server import ClipwireServer, HubConfig
from clipwire.server.store.postgres import MIGRATIONS, SchemaOutOfDate


async def test_hub_on_postgres_stores_delivers_and_survives_a_restart(
    hub_factory: HubFactory, dial: Dial
) -> None:
    async with fresh_schema(require("postgres")) as dsn:
        first = await hub_factory(database_url=dsn, migrate_on_start=True)
        alice, bob = await dial(first.url, "alice"), await dial(first.url, "bob")
        ok = await alice.ok("send", to="bob", cmid="m1", text="hi from postgres")
        assert (await bob.event("msg"))["text"] == "hi from postgres"
        await first.close()

        second = await hub_factory(database_url=dsn)
        again = await dial(second.url, "bob", resume={ok["conv"]: 0})
        assert (await again.event("msg", conv=ok["conv"], seq=1))["text"] == "hi from postgres"
        assert [c["conv"] for c in again.welcome["convs"]] == [ok["conv"]]
        await second.close()


async def test_an_unmigrated_database_is_refused_with_what_to_do(tmp_path: object) -> None:
    async with fresh_schema(require("postgres")) as dsn:
        server = ClipwireServer(HubConfig(port=0, database_url=dsn, secret="s" * 32, transport=TRANSPORT))
        with pytest.raises(SchemaOutOfDate, match="clipwire migrate"):
            await server.start()
        await server.store.close()

        migrate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clipwire.server", "migrate", "--database-url", dsn,
            stdout=asyncio.subprocess.PIPE,
        )
        out = (await migrate.communicate())[0].decode()
        assert migrate.returncode == 0
        assert f"schema version {len(MIGRATIONS)}" in out
        server = ClipwireServer(HubConfig(port=0, database_url=dsn, secret="s" * 32, transport=TRANSPORT))
        await server.start()
        await server.close()
