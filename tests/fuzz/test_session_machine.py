"""A hypothesis state machine of the session rules against a real hub (issue 8, point 7).

Four devices of three users (ann has two) share a group and a DM on a hub that runs
in this process on its own SQLite file, with a tiny resume budget (``resume_cap`` 2,
``resume_total_max`` 3), so that resumes often end in ``gap`` events. The rules:

- ``send``: a connected device sends a new message and waits for its ``ok``;
- ``send_then_drop``: a connected device sends and drops its connection at once, so the
  message may or may not be stored: its ``ok`` is in doubt until the device retries it,
  with the same ``cmid``, after reconnecting;
- ``disconnect``: a connected device goes away (clean close or a dropped socket);
- ``reconnect``: a device away comes back, resumes from its contiguous marks and
  resends what it never saw acknowledged;
- ``restart_hub``: the hub shuts down and starts again on the same file and port.

The devices are ``benchmarks.faults.Device``: they keep only the client's part of
SPEC section 10. After every rule, every connected device must hold every
acknowledged message of its conversations (waited for, bounded), and the invariant
holds for every device: what it showed its application is, per conversation, a
gap-free prefix of the acknowledged messages, in order (a message whose ``ok`` is
still in doubt may stand where nothing is acknowledged yet). At the end everybody
reconnects and resends, and each device must have shown exactly the acknowledged
messages, each once, in order.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from wire import SECRET

from benchmarks.faults import AckLog, ClientTiming, Device, check_prefix, score_device, until
from clipwire.protocol import encode
from clipwire.server import ClipwireServer, HubConfig

T = TypeVar("T")
DEVICES = (("ann", "ann-1"), ("ann", "ann-2"), ("bob", "bob-1"), ("cat", "cat-1"))
SETTLE_S = 3.0  # in-process on loopback, every rule settles within milliseconds
RULES_RUN: Counter[str] = Counter()  # how often each rule ran, for a look at the coverage
TIMING = ClientTiming(request_timeout_s=5.0, hole_grace_s=0.05, open_timeout_s=5.0,
                      ping_interval_s=None, ping_timeout_s=None)


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Nothing to clean up is created before start(): teardown() ends what start() began.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.workdir = Path(tempfile.gettempdir()) / f"clipwire-machine-{uuid.uuid4().hex[:12]}"
        self.config = HubConfig(
            port=0, db=str(self.workdir / "hub.db"), secret=SECRET, dm_policy="everyone",
            rate_send_per_s=100_000.0, rate_history_per_s=100_000.0, rate_social_per_s=100_000.0,
            resume_cap=2, resume_total_max=3,
        )
        self.server: ClipwireServer | None = None
        self.acks = AckLog()
        self.devices = {label: Device(user, label, SECRET, TIMING) for user, label in DEVICES}
        self.convs_of: dict[str, list[str]] = {}
        self.cmids = itertools.count(1)
        self.restarts = 0

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        return self.loop.run_until_complete(asyncio.wait_for(work, 60))

    # -- set-up ---------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.workdir.mkdir()
        self.run(self._start())

    async def _start(self) -> None:
        self.server = ClipwireServer(self.config)
        await self.server.start()
        self.config = self.config.with_values(port=self.server.port)  # restarts keep the URL
        for device in self.devices.values():
            await device.connect(self.server.url)
        ann = self.devices["ann-1"]
        group = (await ann.request("group.create", members=["bob", "cat"], title="club"))["conv"]
        opened = await ann.request("send", to="bob", cmid="open", text="hi bob")
        assert opened["t"] == "ok", opened
        self.acks.ack(opened["conv"], opened["seq"], "ann", "open")
        ann.own(opened["conv"], opened["seq"], "open")
        self.convs_of = {"ann": [group, opened["conv"]], "bob": [group, opened["conv"]], "cat": [group]}
        await self._settle()

    # -- rules ----------------------------------------------------------------------------

    def connected(self) -> list[str]:
        return [label for label, d in self.devices.items() if d.connected]

    def away(self) -> list[str]:
        return [label for label, d in self.devices.items() if not d.connected]

    @precondition(lambda self: self.server is not None and self.connected())
    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        RULES_RUN["send"] += 1
        device = self.devices[data.draw(st.sampled_from(self.connected()), "device")]
        conv = data.draw(st.sampled_from(self.convs_of[device.user]), "conv")
        cmid = f"{device.label}.{next(self.cmids)}"

        async def go() -> None:
            assert await device.send_until_acked(conv, cmid, self.acks, within_s=SETTLE_S), device.problems
            await self._settle()

        self.run(go())

    @precondition(lambda self: self.server is not None and self.connected())
    @rule(data=st.data(), pause=st.sampled_from([0.0, 0.0, 0.01]))
    def send_then_drop(self, data: st.DataObject, pause: float) -> None:
        RULES_RUN["send_then_drop"] += 1
        device = self.devices[data.draw(st.sampled_from(self.connected()), "device")]
        conv = data.draw(st.sampled_from(self.convs_of[device.user]), "conv")
        cmid = f"{device.label}.{next(self.cmids)}"

        async def go() -> None:
            self.acks.attempt(conv, device.user, cmid)
            device.outbox[cmid] = conv  # retried, same cmid, after the next reconnect
            assert device.ws is not None
            await device.ws.send(encode({"t": "send", "id": 10**9 + next(self.cmids), "conv": conv,
                                         "cmid": cmid, "text": f"text of {cmid}"}))
            await asyncio.sleep(pause)
            await device.abort()
            await self._settle()

        self.run(go())

    @precondition(lambda self: self.connected())
    @rule(data=st.data(), clean=st.booleans())
    def disconnect(self, data: st.DataObject, clean: bool) -> None:
        RULES_RUN["disconnect"] += 1
        device = self.devices[data.draw(st.sampled_from(self.connected()), "device")]
        self.run(device.drop() if clean else device.abort())

    @precondition(lambda self: self.server is not None and self.away())
    @rule(data=st.data())
    def reconnect(self, data: st.DataObject) -> None:
        RULES_RUN["reconnect"] += 1
        device = self.devices[data.draw(st.sampled_from(self.away()), "device")]

        async def go() -> None:
            assert self.server is not None
            await device.connect(self.server.url)
            await device.flush_outbox(self.acks, within_s=SETTLE_S)
            assert not device.outbox, device.problems
            await self._settle()

        self.run(go())

    @precondition(lambda self: self.server is not None and self.restarts < 3)
    @rule()
    def restart_hub(self) -> None:
        RULES_RUN["restart_hub"] += 1
        async def go() -> None:
            assert self.server is not None
            await self.server.close()
            for device in self.devices.values():
                await asyncio.wait_for(device.lost.wait(), SETTLE_S)
            self.server = ClipwireServer(self.config)
            await self.server.start()

        self.restarts += 1
        self.run(go())

    # -- what must hold -----------------------------------------------------------------------

    @invariant()
    def shown_is_a_gap_free_prefix_of_the_acknowledged(self) -> None:
        in_doubt = {(conv, d.user, cmid) for d in self.devices.values() for cmid, conv in d.outbox.items()}
        for device in self.devices.values():
            assert device.problems == []
            assert check_prefix(device.label, device.app, self.acks, in_doubt) == []
        assert self.acks.conflicts == []

    async def _settle(self) -> None:
        """Every connected device holds every acknowledged message of its conversations."""
        def done() -> bool:
            return all(not d.holes() and all(d.contig.get(c, 0) >= self.acks.last_seq(c)
                                             for c in self.convs_of[d.user])
                       for d in self.devices.values() if d.connected)

        def lagging() -> str:
            return str({d.label: (d.contig, d.holes()) for d in self.devices.values() if d.connected})

        try:
            await until(done, SETTLE_S, "connected devices complete")
        except AssertionError:
            acked = {c: self.acks.last_seq(c) for c in self.convs_of["ann"]}
            raise AssertionError(f"connected devices did not get every acknowledged message: "
                                 f"{lagging()}, acknowledged up to {acked}") from None

    def teardown(self) -> None:
        if self.loop is None:
            return
        try:
            if self.server is not None and self.convs_of:
                self.run(self._everyone_back())
                for device in self.devices.values():
                    score = score_device(device.label, device.app, self.convs_of[device.user], self.acks)
                    assert score.ok and score.recovered == 0, score
                    assert score.delivered == score.expected
                assert self.acks.attempted == set(self.acks.seq_of), "a send was never acknowledged"
        finally:
            try:
                self.run(self._close())
            finally:
                self.loop.run_until_complete(_cancel_the_rest())
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.close()
                shutil.rmtree(self.workdir, ignore_errors=True)

    async def _everyone_back(self) -> None:
        assert self.server is not None
        for device in self.devices.values():
            if not device.connected:
                await device.connect(self.server.url)
        for device in self.devices.values():
            await device.flush_outbox(self.acks, within_s=SETTLE_S)
        await self._settle()

    async def _close(self) -> None:
        await asyncio.gather(*(d.close() for d in self.devices.values()), return_exceptions=True)
        if self.server is not None:
            await self.server.close()


async def _cancel_the_rest() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_session_rules_keep_every_device_a_gap_free_prefix_of_the_acknowledged() -> None:
    """About 700 steps in some 6 s. A failing run prints its steps as they were drawn;
    CLIPWIRE_FUZZ_SHRINK=1 shrinks them first (minutes: each failing step waits SETTLE_S)."""
    phases = list(Phase) if os.environ.get("CLIPWIRE_FUZZ_SHRINK") == "1" else \
        [p for p in Phase if p is not Phase.shrink]
    RULES_RUN.clear()
    run_state_machine_as_test(SessionMachine, settings=settings(
        max_examples=25, stateful_step_count=30, deadline=None, database=None, phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ))
    print(f"\nsession machine: rules run {dict(RULES_RUN)}")
    assert set(RULES_RUN) == {"send", "send_then_drop", "disconnect", "reconnect", "restart_hub"}
