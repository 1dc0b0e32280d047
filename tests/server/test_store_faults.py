"""When the store fails, senders get ``unavailable``, nothing unstored is acknowledged,
and the hub recovers by itself when the store does."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import pytest
from services import fresh_schema, require
from socialhelp import befriend
from wire import Dial, HubFactory, HubProcess, RawClient, history_all, token


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


# -- a full disk under the default SQLite store ---------------------------------


class SmallDisk:
    """A tmpfs of ``size`` bytes that only the hub sees, which a test fills and frees.

    Once it is full, every write that needs a new block fails with ENOSPC, as on a real
    full disk, and SQLite answers SQLITE_FULL ("database or disk is full"). It is mounted
    in a mount namespace of its own, kept alive by a holder process (``unshare --mount``):
    the hub runs inside it (``prefix``, an ``nsenter``) and the test reaches its files
    through ``/proc/<holder>/root`` (``files``). Nothing is mounted on the host, so nothing
    can be left mounted behind: the tmpfs goes with the last process of the namespace,
    and the holder ends when its stdin closes, that is with the test however it ends.
    """

    def __init__(self, where: Path, size: int = 4 << 20) -> None:
        self.where = where.resolve()  # the mount point, as the hub sees it
        self.size = size
        self.holder: subprocess.Popen[str] | None = None

    def mount(self) -> None:
        """Mount the tmpfs; skip (fail in CI) where this machine does not allow it."""
        missing = [tool for tool in ("unshare", "nsenter") if shutil.which(tool) is None]
        if missing:
            _cannot(f"{' and '.join(missing)} (util-linux) not found")
        self.where.mkdir(parents=True, exist_ok=True)
        # Not root: a user namespace of our own may still mount a tmpfs.
        user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        self.holder = subprocess.Popen(
            ["unshare", *user, "--mount", "--propagation", "private", "--", "sh", "-c",
             'mount -t tmpfs -o size="$1" clipwire-small-disk "$2" && echo mounted && exec cat >/dev/null',
             "sh", str(self.size), str(self.where)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.holder.stdout is not None and self.holder.stderr is not None
        if self.holder.stdout.readline().strip() != "mounted":
            why = self.holder.stderr.read().strip() or "no reason given"
            self.close()
            _cannot(f"could not mount a tmpfs in a private mount namespace ({why}); run as "
                    "root, or where unprivileged user namespaces are allowed")
        assert os.statvfs(self.files).f_blocks * os.statvfs(self.files).f_frsize == self.size

    @property
    def prefix(self) -> list[str]:
        """Run a command inside the namespace, where the tmpfs is mounted on ``where``."""
        assert self.holder is not None
        user = [] if os.geteuid() == 0 else ["--user", "--preserve-credentials"]
        return ["nsenter", f"--target={self.holder.pid}", *user, "--mount", "--"]

    @property
    def files(self) -> Path:
        """The tmpfs as the test sees it from outside the namespace."""
        assert self.holder is not None
        return Path(f"/proc/{self.holder.pid}/root") / self.where.relative_to("/")

    def fill(self) -> None:
        """Write a ballast file until the tmpfs has not one free byte left."""
        fd = os.open(self.files / "ballast", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for chunk in (1 << 20, 4096, 1):  # the last, partly used page too
                block = bytes(chunk)
                while True:
                    try:
                        os.write(fd, block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        assert os.statvfs(self.files).f_bavail == 0

    def free(self) -> None:
        (self.files / "ballast").unlink()
        assert os.statvfs(self.files).f_bavail > 0

    def close(self) -> None:
        if self.holder is not None:
            for pipe in (self.holder.stdin, self.holder.stdout, self.holder.stderr):
                if pipe is not None:
                    pipe.close()
            self.holder.wait(10)
            self.holder = None


def _cannot(reason: str) -> NoReturn:
    message = f"the full-disk tests need a tmpfs of their own: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[SmallDisk, HubProcess]]:
    """A hub process whose SQLite file lives on a :class:`SmallDisk` (not started yet)."""
    disk = SmallDisk(tmp_path / "disk")
    disk.mount()
    hub = HubProcess(disk.where / "hub.db", prefix=disk.prefix)
    try:
        yield disk, hub
    finally:
        hub.stop()
        disk.close()


async def open_as(url: str, user: str) -> RawClient:
    client = await RawClient.open(url)
    await client.hello(token(user))
    return client


def in_order(messages: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return [(m["seq"], m["cmid"], m["text"]) for m in messages]


async def test_full_disk_answers_unavailable_and_the_hub_recovers_by_itself(
    small_disk: tuple[SmallDisk, HubProcess],
) -> None:
    disk, hub = small_disk
    hub.start()
    alice, bob = await open_as(hub.url, "alice"), await open_as(hub.url, "bob")
    conv = (await alice.ok("send", to="bob", cmid="before", text="stored before"))["conv"]
    await bob.event("msg", conv=conv, seq=1)
    stored = [(1, "before", "stored before")]
    # SQLite writes a commit at the end of the WAL, and only after a checkpoint (at 1000
    # pages) from its start again, over space the file already holds. This WAL has not
    # come near that, so every commit needs new space, which a full disk refuses.
    assert (disk.files / "hub.db-wal").stat().st_size < 1000 * 4096
    disk.fill()

    # Several sends at once, so that the group commit fails whole batches too.
    during = {f"during-{n}": f"sent while full {n}" for n in range(6)}
    rids = {cmid: await alice.send_request("send", conv=conv, cmid=cmid, text=text)
            for cmid, text in during.items()}
    for rid in rids.values():
        refused = await alice.reply(rid)
        assert (refused["t"], refused["code"]) == ("error", "unavailable"), refused
        assert "retry with the same cmid" in refused["message"]
    # A first message to someone new needs its DM created: that write fails as well.
    refused = await alice.call("send", to="carol", cmid="hi-carol", text="hi carol")
    assert (refused["t"], refused["code"]) == ("error", "unavailable"), refused
    assert "retry with the same cmid" in refused["message"]

    # Nothing was delivered, and the hub keeps serving what needs no write.
    await bob.no_event("msg")
    await alice.ok("ping")
    await alice.send_frame({"t": "typing", "conv": conv})
    assert await bob.event("typing") == {"t": "typing", "conv": conv, "user": "alice"}
    assert in_order(await history_all(bob, conv)) == stored
    carol = await open_as(hub.url, "carol")
    assert carol.welcome["convs"] == []

    # Space comes back; the same hub process, not restarted, stores the retries.
    disk.free()
    rids = {cmid: await alice.send_request("send", conv=conv, cmid=cmid, text=text)
            for cmid, text in during.items()}
    acked = {cmid: await alice.reply(rid) for cmid, rid in rids.items()}
    assert all(reply["t"] == "ok" for reply in acked.values()), acked
    stored += sorted((reply["seq"], cmid, during[cmid]) for cmid, reply in acked.items())
    assert [seq for seq, _, _ in stored] == list(range(1, len(during) + 2))  # no gap
    delivered = [await bob.event("msg", conv=conv, seq=seq) for seq, _, _ in stored[1:]]
    assert in_order(delivered) == stored[1:]
    again = await alice.ok("send", conv=conv, cmid="during-0", text=during["during-0"])
    assert again["seq"] == acked["during-0"]["seq"]  # stored once
    await bob.no_event("msg")
    assert in_order(await history_all(bob, conv)) == stored

    first = await alice.ok("send", to="carol", cmid="hi-carol", text="hi carol")
    assert first["seq"] == 1
    assert (await carol.event("msg", conv=first["conv"]))["text"] == "hi carol"

    # Restarted on the same file after a crash: exactly what was acknowledged.
    for client in (alice, bob, carol):
        await client.close()
    hub.kill()
    hub.start()
    bob = await open_as(hub.url, "bob")
    try:
        assert in_order(await history_all(bob, conv)) == stored
    finally:
        await bob.close()
    carol = await open_as(hub.url, "carol")
    try:
        assert in_order(await history_all(carol, first["conv"])) == [(1, "hi-carol", "hi carol")]
    finally:
        await carol.close()


async def test_a_hub_killed_on_a_full_disk_keeps_only_what_it_acknowledged(
    small_disk: tuple[SmallDisk, HubProcess],
) -> None:
    disk, hub = small_disk
    hub.start()
    alice = await open_as(hub.url, "alice")
    conv = (await alice.ok("send", to="bob", cmid="before", text="stored before"))["conv"]
    disk.fill()
    rids = [await alice.send_request("send", conv=conv, cmid=f"lost-{n}", text=f"refused {n}")
            for n in range(6)]
    for rid in rids:
        assert (await alice.reply(rid))["code"] == "unavailable"
    await alice.close()
    # Killed with whatever the refused commits began to write still at the end of its WAL.
    hub.kill()
    disk.free()
    hub.start()
    bob = await open_as(hub.url, "bob")
    try:
        assert in_order(await history_all(bob, conv)) == [(1, "before", "stored before")]
        retried = await bob.ok("send", conv=conv, cmid="after", text="stored after")
        assert retried["seq"] == 2
    finally:
        await bob.close()


async def test_leaving_while_the_store_is_down_still_shows_the_user_offline(
    hub_factory: HubFactory, dial: Dial
) -> None:
    """Saving last_seen fails, but friends must not keep seeing the user online."""
    async with fresh_schema(require("postgres")) as dsn:
        hub = await hub_factory(database_url=dsn, migrate_on_start=True)
        alice, bob = await dial(hub.url, "alice"), await dial(hub.url, "bob")
        await befriend(alice, bob)
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute("ALTER TABLE last_seen RENAME TO last_seen_away")
            await alice.close()
            gone = await bob.event("presence", user="alice")
            assert gone["online"] is False and gone["last_seen"] > 0
            await admin.execute("ALTER TABLE last_seen_away RENAME TO last_seen")
        finally:
            await admin.close()
