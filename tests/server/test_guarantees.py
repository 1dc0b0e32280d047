"""The five guarantees of PROTOCOL.md section 7, each checked end to end.

1. durable before acknowledged   (a hub process killed with SIGKILL right after ``ok``)
2. idempotent by ``cmid``        (retries sequential, pipelined, across restarts, shares)
3. ordered, gap-free ``seq``     (50 connections sending concurrently into one group)
4. nothing lost                  (reconnects, resume, gaps, and a hub killed mid-stream)
5. only members, and ``from`` is always the token's user
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from wire import (
    SECRET,
    TRANSPORT,
    WAIT_S,
    Connect,
    Dial,
    HubFactory,
    HubProcess,
    RawClient,
    history_all,
    token,
    video_card,
)

from clipwire.server import ClipwireServer, HubConfig


async def open_as(url: str, user: str, **hello: Any) -> RawClient:
    client = await RawClient.open(url)
    await client.hello(token(user), **hello)
    return client


def start_again(hub_process: HubProcess) -> None:
    """Start a killed hub process again on the same database (on a new port)."""
    assert hub_process.proc is not None and hub_process.proc.stdout is not None
    assert hub_process.proc.poll() is not None, "the hub process is still running"
    hub_process.proc.stdout.close()
    hub_process.start()


# -- 1. durable before acknowledged -----------------------------------------


async def test_every_acknowledged_message_survives_sigkill(hub_process: HubProcess) -> None:
    hub_process.start()
    alice = await open_as(hub_process.url, "alice")
    conv = (await alice.ok("send", to="bob", cmid="d0", text="durable 0"))["conv"]
    acked = {1: "durable 0"}
    texts = {await alice.send_request("send", conv=conv, cmid=f"d{n}", text=f"durable {n}"): f"durable {n}"
             for n in range(1, 41)}
    try:
        for count, (rid, text) in enumerate(texts.items(), start=1):
            reply = await alice.reply(rid)
            assert reply["t"] == "ok", reply
            acked[reply["seq"]] = text
            if count == 10:
                hub_process.kill()  # the instant the 10th ok arrives; later ones may be in flight
    except ConnectionClosed:
        pass
    assert len(acked) >= 11
    await alice.close()

    start_again(hub_process)
    bob = await open_as(hub_process.url, "bob")
    stored = {m["seq"]: m["text"] for m in await history_all(bob, conv)}
    assert stored.items() >= acked.items()  # every ok'd message, with its seq
    assert sorted(stored) == list(range(1, len(stored) + 1))
    await bob.close()


# -- 2. idempotent by cmid --------------------------------------------------


async def test_retried_send_returns_the_first_result_and_is_stored_and_delivered_once(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    first = await alice.ok("send", to="bob", cmid="once", text="only once")
    await bob.event("conv")
    await bob.event("msg", cmid="once")

    again = await alice.ok("send", to="bob", cmid="once", text="only once")
    changed = await alice.ok("send", conv=first["conv"], cmid="once", text="a different text")
    other_device = await connect("alice")
    from_elsewhere = await other_device.ok("send", to="bob", cmid="once", text="only once")
    for retry in (again, changed, from_elsewhere):
        assert (retry["conv"], retry["seq"], retry["ts"]) == (first["conv"], first["seq"], first["ts"])

    await bob.no_event()  # neither a second msg nor a second conv event
    await other_device.no_event("msg")
    stored = await history_all(bob, first["conv"])
    assert [(m["cmid"], m["text"]) for m in stored] == [("once", "only once")]


async def test_identical_sends_pipelined_back_to_back(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    conv = (await alice.ok("send", to="bob", cmid="setup", text="setup"))["conv"]
    await bob.event("msg", cmid="setup")

    frame = {"conv": conv, "cmid": "twin", "text": "sent twice"}
    rids = [await alice.send_request("send", **frame) for _ in range(2)]
    rids.append(await alice.send_request("send", conv=conv, cmid="other", text="in between"))
    rids += [await alice.send_request("send", **frame) for _ in range(3)]
    replies = [await alice.reply(rid) for rid in rids]
    assert all(r["t"] == "ok" for r in replies), replies
    twins = {(r["conv"], r["seq"], r["ts"]) for i, r in enumerate(replies) if i != 2}
    assert len(twins) == 1
    assert sorted({r["seq"] for r in replies}) == [2, 3]

    delivered = [await bob.event("msg") for _ in range(2)]
    assert sorted(m["cmid"] for m in delivered) == ["other", "twin"]
    await bob.no_event("msg")
    assert [m["cmid"] for m in await history_all(bob, conv)].count("twin") == 1


async def test_retried_share_returns_the_same_results_and_delivers_once(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    group = (await alice.ok("group.create", members=["carol"], title="g"))["conv"]
    share = {"cmid": "share-1", "video": video_card("v"), "to": ["bob"], "convs": [group, "g:nope"]}
    first = await alice.ok("share", **share)
    retried = await alice.ok("share", **share)
    rids = [await alice.send_request("share", **share) for _ in range(2)]
    pipelined = [await alice.reply(rid) for rid in rids]
    for reply in (retried, *pipelined):
        assert reply["results"] == first["results"]
    assert [r.get("error") for r in first["results"]] == [None, None, "forbidden"]

    assert (await bob.event("msg"))["cmid"] == "share-1"
    assert (await carol.event("msg"))["cmid"] == "share-1"
    await bob.no_event("msg")
    await carol.no_event("msg")
    assert len(await history_all(carol, group)) == 1


async def test_retry_after_a_hub_restart_is_still_recognised(hub_factory: HubFactory, dial: Dial) -> None:
    first_hub = await hub_factory()
    alice = await dial(first_hub.url, "alice")
    first = await alice.ok("send", to="bob", cmid="across", text="before restart")
    await first_hub.close()

    second_hub = await hub_factory()
    alice, bob = await dial(second_hub.url, "alice"), await dial(second_hub.url, "bob")
    retry = await alice.ok("send", to="bob", cmid="across", text="before restart")
    assert (retry["conv"], retry["seq"], retry["ts"]) == (first["conv"], first["seq"], first["ts"])
    await bob.no_event()
    assert len(await history_all(bob, first["conv"])) == 1


async def test_the_idempotency_key_is_conversation_sender_and_cmid(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    dm = (await alice.ok("send", to="bob", cmid="same", text="alice's"))["conv"]
    bobs = await bob.ok("send", conv=dm, cmid="same", text="bob's")
    group = (await alice.ok("group.create", members=["bob"], title="g"))["conv"]
    elsewhere = await alice.ok("send", conv=group, cmid="same", text="in the group")
    assert (bobs["conv"], bobs["seq"]) == (dm, 2)
    assert (elsewhere["conv"], elsewhere["seq"]) == (group, 1)


# -- 3. ordered and gap-free -------------------------------------------------


async def test_fifty_concurrent_senders_get_gap_free_seqs_in_one_order(
    hub: ClipwireServer, connect: Connect
) -> None:
    users = [f"u{n:02d}" for n in range(50)]
    per_sender = 4
    total = len(users) * per_sender
    clients = [await connect(user) for user in users]
    conv = (await clients[0].ok("group.create", members=users[1:], title="crowd"))["conv"]
    for client in clients:
        await client.event("conv", conv=conv)

    async def send_all(client: RawClient) -> list[dict[str, Any]]:
        user = client.welcome["user"]
        rids = [await client.send_request("send", conv=conv, cmid=f"{user}-{n}", text=f"{user} {n}")
                for n in range(per_sender)]
        return [await client.reply(rid) for rid in rids]

    replies = await asyncio.gather(*(send_all(client) for client in clients))
    own_seqs: list[list[int]] = []
    for client_replies in replies:
        assert all(r["t"] == "ok" and r["conv"] == conv for r in client_replies), client_replies
        seqs = [r["seq"] for r in client_replies]
        assert seqs == sorted(seqs)  # one connection's requests keep their order
        own_seqs.append(seqs)
    assert sorted(s for seqs in own_seqs for s in seqs) == list(range(1, total + 1))

    stored = await history_all(clients[0], conv)
    assert [m["seq"] for m in stored] == list(range(1, total + 1))
    order = {m["seq"]: m["cmid"] for m in stored}

    for client, mine in zip(clients, own_seqs, strict=True):
        seen = [await client.event("msg", conv=conv) for _ in range(total - per_sender)]
        seqs = [m["seq"] for m in seen]
        assert seqs == sorted(set(range(1, total + 1)) - set(mine))  # same order, no repeats
        assert all(order[m["seq"]] == m["cmid"] for m in seen)
    await asyncio.gather(*(client.no_event("msg") for client in clients))


# -- 4. nothing lost ---------------------------------------------------------


@dataclass
class Sender:
    """Sends numbered texts; keeps what was acknowledged and retries the rest by cmid."""

    user: str
    client: RawClient | None = None
    acked: dict[str, tuple[str, int]] = field(default_factory=dict)  # cmid -> (conv, seq)
    unacked: dict[str, dict[str, Any]] = field(default_factory=dict)  # cmid -> send fields
    sent: int = 0

    async def connect(self, url: str) -> None:
        self.client = await open_as(url, self.user)

    async def burst(self, count: int, targets: list[dict[str, str]],
                    on_ack: Callable[[], None] | None = None) -> bool:
        """Send ``count`` messages pipelined, then read the answers; False once disconnected."""
        assert self.client is not None
        rids: dict[int, str] = {}
        try:
            for _ in range(count):
                self.sent += 1
                cmid = f"{self.user}-{self.sent}"
                self.unacked[cmid] = {**targets[self.sent % len(targets)], "cmid": cmid, "text": cmid}
                rids[await self.client.send_request("send", **self.unacked[cmid])] = cmid
        except ConnectionClosed:
            await self._collect(rids, on_ack)
            return False
        return await self._collect(rids, on_ack)

    def forget_last_ack(self) -> None:
        """Act as if the last ``ok`` had been lost on the way: the message is retried."""
        cmid = next(reversed(self.acked))
        conv, _ = self.acked.pop(cmid)
        self.unacked[cmid] = {"conv": conv, "cmid": cmid, "text": cmid}

    async def retry(self) -> dict[str, tuple[str, int]]:
        assert self.client is not None
        retried = dict(self.unacked)
        rids = {await self.client.send_request("send", **fields): cmid for cmid, fields in retried.items()}
        assert await self._collect(rids)
        return {cmid: self.acked[cmid] for cmid in retried}

    async def _collect(self, rids: dict[int, str], on_ack: Callable[[], None] | None = None) -> bool:
        assert self.client is not None
        try:
            for rid, cmid in rids.items():
                reply = await self.client.reply(rid)
                assert reply["t"] == "ok", reply
                self.acked[cmid] = (reply["conv"], reply["seq"])
                del self.unacked[cmid]
                if on_ack is not None:
                    on_ack()
        except ConnectionClosed:
            return False  # the hub went away: what is unacknowledged is retried later
        return True


@dataclass
class Receiver:
    """A client that keeps its highest contiguous seq per conversation, as section 7.4 asks."""

    user: str
    client: RawClient | None = None
    held: dict[str, dict[int, str]] = field(default_factory=dict)  # conv -> seq -> cmid
    announced: list[tuple[str, int, int]] = field(default_factory=list)  # gaps the hub told of
    unannounced: list[tuple[str, int]] = field(default_factory=list)  # holes seen in live delivery
    repeats: int = 0

    def contiguous(self, conv: str) -> int:
        seqs, top = self.held.get(conv, {}), 0
        while top + 1 in seqs:
            top += 1
        return top

    async def connect(self, url: str) -> None:
        resume = {conv: self.contiguous(conv) for conv in self.held}
        self.client = await open_as(url, self.user, resume=resume)
        for listed in self.client.welcome["convs"]:
            if listed["conv"] not in resume and listed["last_seq"] > 0:
                self.announced.append((listed["conv"], 1, listed["last_seq"]))
                await self._fill(listed["conv"], listed["last_seq"])

    def _absorb(self, conv: str, seq: int, cmid: str) -> None:
        seqs = self.held.setdefault(conv, {})
        if seq in seqs:
            assert seqs[seq] == cmid, (conv, seq, seqs[seq], cmid)
            self.repeats += 1
        else:
            seqs[seq] = cmid

    async def _fill(self, conv: str, up_to: int) -> None:
        """Fetch every missing seq up to ``up_to`` with history."""
        assert self.client is not None
        before = up_to + 1
        while any(s not in self.held.get(conv, {}) for s in range(1, before)):
            page = (await self.client.ok("history", conv=conv, before=before, limit=100))["messages"]
            for m in page:
                self._absorb(conv, m["seq"], m["cmid"])
            before = page[0]["seq"]

    async def _handle(self, frame: dict[str, Any]) -> None:
        if frame["t"] == "msg":
            conv, seq = frame["conv"], frame["seq"]
            if seq > self.contiguous(conv) + 1:
                self.unannounced.append((conv, seq))
                await self._fill(conv, seq - 1)
            self._absorb(conv, seq, frame["cmid"])
        elif frame["t"] == "gap":
            self.announced.append((frame["conv"], frame["from_seq"], frame["to_seq"]))
            await self._fill(frame["conv"], frame["to_seq"])
        elif frame["t"] == "conv":
            self.held.setdefault(frame["conv"], {})

    async def pump(self, expected: Callable[[], dict[str, int] | None] = lambda: None) -> None:
        """Handle events until the connection ends, or until all of ``expected()`` is held.

        ``expected`` gives the last seq of each conversation once it is known (``None`` before).
        """
        assert self.client is not None
        idle = 0.0
        while True:
            last = expected()
            if last is not None and all(self.contiguous(c) >= s for c, s in last.items()):
                return
            try:
                frame = await self.client.event(timeout=0.1)
                await self._handle(frame)
            except TimeoutError:
                idle = idle + 0.1 if last is not None else 0.0
                assert idle < WAIT_S, f"the receiver is still missing messages: {last}"
                continue
            except ConnectionClosed:
                return
            idle = 0.0


async def test_nothing_acknowledged_is_lost_across_reconnects_and_a_hub_kill(
    hub_process: HubProcess,
) -> None:
    hub_process.extra_env["CLIPWIRE_RESUME_CAP"] = "6"
    hub_process.start()
    senders = [Sender(f"s{n}") for n in range(3)]
    receiver = Receiver("r")

    # Phase 1: everyone connected; a group and one DM per sender with the receiver.
    await receiver.connect(hub_process.url)
    live = asyncio.create_task(receiver.pump())
    for sender in senders:
        await sender.connect(hub_process.url)
    assert senders[0].client is not None
    group = (await senders[0].client.ok("group.create", members=["s1", "s2", "r"], title="all"))["conv"]
    targets = [{"conv": group}, {"to": "r"}]
    await asyncio.gather(*(s.burst(8, targets) for s in senders))

    # Phase 2: the receiver drops out while messages are in flight, and stays away for a while.
    in_flight = asyncio.gather(*(s.burst(8, targets) for s in senders))
    assert receiver.client is not None
    await receiver.client.close()
    await live
    await in_flight
    await asyncio.gather(*(s.burst(8, targets) for s in senders))

    # Phase 3: the receiver resumes (more than the cap is waiting: gaps) while the
    # senders stream on, and the hub process is killed after 20 more acknowledgements.
    await receiver.connect(hub_process.url)
    live = asyncio.create_task(receiver.pump())
    acks = 0

    def count_and_kill() -> None:
        nonlocal acks
        acks += 1
        if acks == 20:
            hub_process.kill()

    async def stream(sender: Sender) -> None:
        for _ in range(50):
            if not await sender.burst(3, targets, on_ack=count_and_kill):
                return
        raise AssertionError("the hub was never killed")

    await asyncio.gather(*(stream(s) for s in senders))
    await live

    # Phase 4: a new hub process on the same database. Senders retry what was not
    # acknowledged (same cmid), including one whose ok they lost, and go on; the
    # receiver resumes and fills announced gaps with history.
    start_again(hub_process)
    await receiver.connect(hub_process.url)
    finished = asyncio.Event()

    def expected() -> dict[str, int] | None:
        if not finished.is_set():
            return None
        last: dict[str, int] = {}
        for sender in senders:
            for conv, seq in sender.acked.values():
                last[conv] = max(last.get(conv, 0), seq)
        return last

    live = asyncio.create_task(receiver.pump(expected))
    for sender in senders:
        await sender.connect(hub_process.url)
        lost = next(reversed(sender.acked))
        first_answer = sender.acked[lost]
        sender.forget_last_ack()
        assert (await sender.retry())[lost] == first_answer
    await asyncio.gather(*(s.burst(6, targets) for s in senders))
    assert not any(s.unacked for s in senders)
    finished.set()
    await live

    # Every acknowledged message exactly once, nothing else, seqs without holes.
    truth = {(conv, seq): cmid for s in senders for cmid, (conv, seq) in s.acked.items()}
    assert len(truth) == sum(len(s.acked) for s in senders) == sum(s.sent for s in senders)
    held = {(conv, seq): cmid for conv, seqs in receiver.held.items() for seq, cmid in seqs.items()}
    assert held == truth
    last = expected()
    assert last is not None and len(last) == 1 + len(senders)  # the group and three DMs
    for conv, top in last.items():
        assert sorted(receiver.held[conv]) == list(range(1, top + 1))
    # On one hub, only the gaps the hub announced needed history.
    assert receiver.unannounced == []
    assert receiver.announced, "the resume cap never produced a gap"
    for client in [receiver.client, *(s.client for s in senders)]:
        assert client is not None
        await client.close()


# -- 5. who may talk to whom -------------------------------------------------


async def test_non_members_get_the_same_answer_as_for_a_conversation_that_does_not_exist(
    hub: ClipwireServer, connect: Connect
) -> None:
    alice, bob, carol = await connect("alice"), await connect("bob"), await connect("carol")
    dm = (await alice.ok("send", to="bob", cmid="private", text="just us"))["conv"]
    group = (await alice.ok("group.create", members=["bob"], title="no carol"))["conv"]
    await alice.ok("send", conv=group, cmid="g1", text="group secret")

    requests: list[tuple[str, dict[str, Any]]] = [
        ("send", {"cmid": "intrude", "text": "let me in"}),
        ("send", {"cmid": "intrude-v", "kind": "video", "video": video_card("v")}),
        ("history", {}),
        ("history", {"before": 2, "limit": 1}),
        ("group.add", {"members": ["carol"]}),
        ("group.remove", {"members": ["bob"]}),
        ("group.leave", {}),
    ]
    answers: set[tuple[str, str, str]] = set()
    for conv in (dm, group, "g:does-not-exist", "dm:0123456789abcdef01234567", "anything"):
        for t, fields in requests:
            reply = await carol.call(t, conv=conv, **fields)
            assert reply["t"] == "error", (conv, t, reply)
            answers.add((reply["t"], reply["code"], reply["message"]))
        shared = await carol.ok("share", cmid=f"s-{conv}", video=video_card("v"), convs=[conv])
        assert shared["results"] == [{"conv": conv, "error": "forbidden"}]
    assert answers == {("error", "forbidden", "no such conversation, or you are not a member")}

    # Nothing reached the members, nothing was stored, nobody was added or removed.
    await alice.no_event("msg")
    await bob.event("msg", cmid="private")
    await bob.event("msg", cmid="g1")
    await bob.no_event("msg")
    assert [m["cmid"] for m in await history_all(alice, dm)] == ["private"]
    assert [m["cmid"] for m in await history_all(alice, group)] == ["g1"]
    listed = {c["conv"]: c for c in (await connect("alice")).welcome["convs"]}
    assert sorted(listed[group]["members"]) == ["alice", "bob"]
    assert (await connect("carol")).welcome["convs"] == []


class FriendsOnly:
    """An application's DM policy: only the pairs it lists may write to each other."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = {frozenset(pair) for pair in pairs}

    async def may_dm(self, sender: str, recipient: str) -> bool:
        return frozenset((sender, recipient)) in self.pairs


async def test_a_dm_needs_the_policys_consent(tmp_path: Path, dial: Dial) -> None:
    config = HubConfig(port=0, db=str(tmp_path / "policy.db"), secret=SECRET, transport=TRANSPORT)
    policy = FriendsOnly(("alice", "bob"))
    async with ClipwireServer(config, policy=policy) as server:
        alice, carol = await dial(server.url, "alice"), await dial(server.url, "carol")
        ok = await alice.ok("send", to="bob", cmid="c1", text="friends")
        refused = await alice.call("send", to="carol", cmid="c2", text="strangers")
        assert (refused["t"], refused["code"]) == ("error", "forbidden")
        shared = await alice.ok("share", cmid="s", video=video_card("v"), to=["bob", "carol"])
        assert [r.get("error") for r in shared["results"]] == [None, "forbidden"]
        assert shared["results"][0]["conv"] == ok["conv"]
        await carol.no_event()
        assert carol.welcome["convs"] == []
        # Consent is asked for every message, not only for the first.
        policy.pairs.clear()
        ended = await alice.call("send", conv=ok["conv"], cmid="c3", text="still friends?")
        assert (ended["t"], ended["code"]) == ("error", "forbidden")
        assert len(await history_all(alice, ok["conv"])) == 2  # the send and the share
        await alice.close()
        await carol.close()


async def test_from_is_always_the_tokens_user(hub: ClipwireServer, connect: Connect) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    ok = await alice.ok("send", to="bob", cmid="c1", text="who am I", **{"from": "bob", "sender": "bob",
                                                                          "user": "bob"})
    msg = await bob.event("msg")
    assert msg["from"] == "alice"
    shared = await alice.ok("share", cmid="s1", video=video_card("v"), convs=[ok["conv"]],
                            **{"from": "carol"})
    assert (await bob.event("msg", seq=shared["results"][0]["seq"]))["from"] == "alice"
    group = (await alice.ok("group.create", members=["bob"], title="t", owner="bob"))["conv"]
    assert (await bob.event("conv", conv=group))["owner"] == "alice"
    stored = await history_all(bob, ok["conv"])
    assert [m["from"] for m in stored] == ["alice", "alice"]
    # A token for "alice" cannot say hello as anyone else either.
    other = await RawClient.open(hub.url)
    welcome = await other.hello(token("alice"), user="bob", sub="bob", **{"from": "bob"})
    assert welcome["user"] == "alice"
    await other.close()
