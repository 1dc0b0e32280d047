"""The bound on second looks: refusals cannot make the hub read the store at will."""

from __future__ import annotations

import time

from clipwire.server.second_look import BURST, PER_S, SecondLooks


def test_each_user_has_a_burst_of_second_looks_then_the_rate() -> None:
    looks = SecondLooks(enabled=True)
    t = time.monotonic() + 10  # the moments asked about, no clock read between them
    burst = int(BURST)
    assert [looks.allow("mallory", now=t) for _ in range(burst + 3)] == [True] * burst + [False] * 3
    assert looks.allow("alice", now=t)  # one user's spending is not another's
    assert not looks.allow("mallory", now=t + 0.5 / PER_S)
    assert looks.allow("mallory", now=t + 1 / PER_S)
    assert not looks.allow("mallory", now=t + 1 / PER_S)


def test_a_hub_without_other_nodes_takes_no_second_look() -> None:
    looks = SecondLooks(enabled=False)
    assert not any(looks.allow("alice", now=time.monotonic() + 10) for _ in range(3))
