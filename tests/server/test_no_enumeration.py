"""Refusals that must not tell an attacker anything, and logs that must not hold secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wire import SECRET, Dial, HubFactory, token

from clipwire.server import sign_token
from clipwire.server.conversations import dm_id
from clipwire.server.store.base import Conversation
from clipwire.server.store.sqlite import SQLiteStore


class CountingStore(SQLiteStore):
    """The real SQLite store, counting the conversation loads the hub asks of it."""

    loads = 0

    async def load_conversation(self, conv: str) -> Conversation | None:
        self.loads += 1
        return await super().load_conversation(conv)


async def test_blocked_unknown_and_foreign_targets_answer_alike(
    hub_factory: HubFactory, dial: Dial
) -> None:
    hub = await hub_factory(dm_policy="friends")
    alice, bob, carol = [await dial(hub.url, u) for u in ("alice", "bob", "carol")]
    await alice.ok("friend.request", user="bob")
    await bob.ok("friend.accept", user="alice")
    group = (await carol.ok("group.create", members=[], title="private"))["conv"]
    await bob.ok("block", user="alice")  # bob blocked alice
    answers = [
        await alice.call("send", to="bob", cmid="1", text="blocked?"),
        await alice.call("send", to="nobody-by-this-name", cmid="2", text="exists?"),
        await alice.call("send", conv=group, cmid="3", text="member?"),
        await alice.call("send", conv="g:does-not-exist", cmid="4", text="there?"),
    ]
    assert len({(a["t"], a["code"], a["message"]) for a in answers}) == 1, answers
    assert answers[0]["code"] == "forbidden"


async def test_an_existing_conversation_is_refused_with_the_same_work_as_a_missing_one(
    hub_factory: HubFactory, dial: Dial, tmp_path: Path
) -> None:
    """Outsiders' refusals cost the same store reads whether the conversation exists or not.

    The cache kept hits and not misses, so a refused ``read`` of an existing DM took no
    store read and one of a made-up id took one: measurably faster, it told which exist.
    """
    store = CountingStore(tmp_path / "counted.db")
    hub = await hub_factory(store=store)
    alice, mallory = await dial(hub.url, "alice"), await dial(hub.url, "mallory")
    await alice.ok("send", to="bob", cmid="1", text="private")
    existing, missing = dm_id("alice", "bob"), dm_id("alice", "nobody-by-this-name")
    assert hub.hub.convs.peek(existing) is not None  # the refusal would come from the cache
    answers, loads = [], []
    for conv in (existing, missing, existing, missing):
        before = store.loads
        answers.append(await mallory.call("read", conv=conv, seq=1))
        loads.append(store.loads - before)
    assert len({(a["t"], a["code"], a["message"]) for a in answers}) == 1, answers
    assert answers[0]["code"] == "forbidden"
    assert loads == [1, 1, 1, 1], loads


def test_no_token_in_the_logs_even_at_debug(tmp_path: Path) -> None:
    """Run a hub at DEBUG, use tokens every way a client can, and grep its whole log."""
    good, bad = token("alice"), sign_token("a-different-secret-a-different-secret", "eve")
    fresh = token("alice", ttl_s=3600)
    script = f"""
import asyncio
from websockets.asyncio.client import connect
from clipwire.protocol import encode, decode
async def main(url):
    for t in ({good!r}, {bad!r}):
        ws = await connect(url)
        await ws.send(encode({{"t": "hello", "id": 1, "v": 1, "token": t}}))
        await ws.recv()
        if t == {good!r}:
            await ws.send(encode({{"t": "refresh", "id": 2, "token": {fresh!r}}}))
            await ws.send(encode({{"t": "refresh", "id": 3, "token": "not.a.token"}}))
            await ws.recv(); await ws.recv()
        await ws.close()
import sys
asyncio.run(main(sys.argv[1]))
"""
    env_db = str(tmp_path / "logs.db")
    hub = subprocess.Popen(
        [sys.executable, "-m", "clipwire.server", "serve", "--port", "0", "--db", env_db,
         "--secret", SECRET, "--log-level", "DEBUG", "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert hub.stdout is not None and hub.stderr is not None
    url = hub.stdout.readline().split()[3]
    subprocess.run([sys.executable, "-c", script, url], check=True, timeout=30)
    hub.terminate()
    logs = hub.stderr.read()
    hub.wait(10)
    hub.stdout.close()
    hub.stderr.close()
    assert "connected: user alice" in logs  # the log is there and at DEBUG
    for secret in (good, bad, fresh, SECRET):
        signature = secret.split(".")[-1]
        hexed = signature.encode().hex()
        for piece in (secret, signature, hexed[:24], " ".join(hexed[i:i + 2] for i in range(0, 24, 2))):
            assert piece not in logs
