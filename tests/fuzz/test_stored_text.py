"""Found by the live fuzz run: U+0000 in a stored text.

PostgreSQL text cannot hold U+0000. Before the fix, a ``send`` whose text held one
failed the whole group commit it landed in, so every other sender in the batch got
``unavailable`` (and, retrying with the same ``cmid``, could land beside the next
such message), and a ``group.create`` with such a title failed as ``internal`` with
a traceback. The hub now refuses U+0000 in ``text`` (send, share) and ``title`` with
``bad_request`` on every store alike, before anything is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from services import fresh_schema, require
from wire import HubFactory, RawClient, token, video_card

from clipwire.server import ClipwireServer


@pytest.fixture(params=["sqlite", "postgres"])
async def any_store_hub(request: pytest.FixtureRequest,
                        hub_factory: HubFactory) -> AsyncIterator[ClipwireServer]:
    if request.param == "sqlite":
        yield await hub_factory()
        return
    async with fresh_schema(require("postgres")) as dsn:
        hub = await hub_factory(database_url=dsn, migrate_on_start=True)
        yield hub
        await hub.close()


async def test_a_nul_in_a_text_is_refused_alone_and_others_sends_are_stored(
    any_store_hub: ClipwireServer,
) -> None:
    clients: list[RawClient] = []

    async def open_as(user: str) -> RawClient:
        client = await RawClient.open(any_store_hub.url)
        clients.append(client)
        await client.hello(token(user))
        return client

    try:
        mallory, ann, bob = await open_as("mallory"), await open_as("ann"), await open_as("bob")
        group = (await mallory.ok("group.create", members=["ann", "bob"], title="club"))["conv"]
        # Back to back, so that without the check both would share one commit.
        bad = await mallory.send_request("send", conv=group, cmid="m1", text="a\x00b")
        good = await ann.send_request("send", conv=group, cmid="a1", text="hello")
        refused, stored = await mallory.reply(bad), await ann.reply(good)
        assert (refused["t"], refused["code"]) == ("error", "bad_request")
        assert "U+0000" in refused["message"]
        assert stored["t"] == "ok" and stored["seq"] == 1
        assert (await bob.event("msg", conv=group))["cmid"] == "a1"

        shares: dict[str, Any] = {"video": video_card(), "convs": [group], "cmid": "m2", "text": "\x00"}
        assert (await mallory.call("share", **shares))["code"] == "bad_request"
        titled = await mallory.call("group.create", members=["ann"], title="club\x00")
        assert (titled["t"], titled["code"]) == ("error", "bad_request")
        # Nothing of mallory's was stored; the rest of the text range is fine.
        fine = await mallory.ok("send", conv=group, cmid="m3", text="\x01\u2028\U0010fffd")
        assert fine["seq"] == 2
        page = (await bob.ok("history", conv=group))["messages"]
        assert [(m["cmid"], m["text"]) for m in page] == [("a1", "hello"), ("m3", "\x01\u2028\U0010fffd")]
    finally:
        for client in clients:
            await client.close()
