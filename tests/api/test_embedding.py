"""The hooks of an embedding application as plain Python objects and callables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wire import SECRET, RawClient, token

from clipwire.protocol import VideoCard
from clipwire.server import ClipwireServer, HubConfig


class Catalog:
    """The app's own idea of its videos: a client cannot forge a card."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(self, card: VideoCard) -> VideoCard:
        self.asked.append(card.id)
        return VideoCard(card.id, f"https://cdn.app.example/{card.id}.mp4", None, card.caption,
                         "the-real-author", 30_000, card.at_ms)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def on_event(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))


async def test_policy_resolver_and_listener_from_python(tmp_path: Path) -> None:
    async def may_dm(sender: str, recipient: str) -> bool:
        return recipient != "private-person"

    catalog, recorder = Catalog(), Recorder()
    config = HubConfig(port=0, db=str(tmp_path / "embed.db"), secret=SECRET)
    async with ClipwireServer(config, policy=may_dm, resolver=catalog,
                              listeners=[recorder]) as server:
        alice = await RawClient.open(server.url)
        await alice.hello(token("alice"))
        refused = await alice.call("send", to="private-person", cmid="0", text="hi")
        assert refused["code"] == "forbidden"
        forged = {"id": "v7", "url": "https://evil.example/phish", "author": "someone-famous",
                  "duration_ms": 5000, "at_ms": 1200, "caption": "look"}
        sent = await alice.ok("send", to="bob", cmid="1", kind="video", video=forged)
        (stored,) = (await alice.ok("history", conv=sent["conv"]))["messages"]
        assert stored["video"] == {"id": "v7", "url": "https://cdn.app.example/v7.mp4",
                                   "caption": "look", "author": "the-real-author",
                                   "duration_ms": 30_000, "at_ms": 1200}
        assert catalog.asked == ["v7"]
        created = [p for kind, p in recorder.events if kind == "message.created"]
        assert [(p["conv"], p["seq"], p["from"]) for p in created] == [(sent["conv"], 1, "alice")]
        assert sorted(created[0]["members"]) == ["alice", "bob"]
        await alice.close()
