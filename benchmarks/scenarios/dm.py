"""dm: many clients DMing random others at stepped aggregate rates.

Each client writes to a few random contacts (``--peers``), so the measured
steps route messages rather than create conversations; a warm-up step writes
once along every pair first. ``--peers 0`` picks any other client each time.
Headline: the highest offered rate with p99 < ``--p99-ms`` and no loss.
"""

from __future__ import annotations

from typing import Any

from ..drivers.base import node_of
from ..systems import Server
from .base import Ctx, Flag, Headline, Scenario, ScenarioError, floats
from .stepped import best, run_steps, warm_up


def run(ctx: Ctx, server: Server) -> dict[str, Any]:
    return measure(ctx, server)


def measure(ctx: Ctx, server: Server, nodes: int = 1) -> dict[str, Any]:
    """The dm run; with ``nodes`` > 1 every contact sits on another node than its writer."""
    o = ctx.opts
    if nodes > 1 and o.peers < 1:
        raise ScenarioError("across nodes, --peers must be at least 1 (contacts are picked on other nodes)")
    users = [f"u{i}" for i in range(o.clients)]
    connected = ctx.connect(users, o.concurrency)
    rng = ctx.rng()

    def others(u: str) -> list[str]:
        return [v for v in users if v != u and (nodes == 1 or node_of(v, nodes) != node_of(u, nodes))]

    peers = {u: rng.sample(others(u), min(o.peers, len(others(u)))) for u in users}
    chunks = ctx.spread(users)
    ctx.pool.call_all("set_peers",
                      per=[{"peers": {u: peers[u] for u in c}, "everyone": users} for c in chunks])
    warm = None
    if o.peers > 0:
        pairs = sum(len(p) for p in peers.values())
        per_rate = o.warmup_rate / len(chunks)
        longest = max(sum(len(peers[u]) for u in c) for c in chunks)
        plans = {i: {"kind": "dm_each", "rate": per_rate} for i in range(len(chunks))}
        warm = warm_up(ctx, server, plans, longest / per_rate + 1, pairs)
    steps = run_steps(
        ctx, server, rates=floats(o.rates), seconds=o.seconds,
        plans=lambda rate: {i: {"kind": "dm", "rate": rate / len(chunks)} for i in range(len(chunks))},
        expect=lambda sent: sent, p99_ms=o.p99_ms, drain_s=o.drain, max_fail=o.max_fail,
    )
    top, limit = best(steps)
    return {"connect": connected, "warmup": warm, "steps": steps,
            "headline": {"rate_per_s": top["offered_per_s"] if top else None,
                         "delivered_per_s": top["delivered_per_s"] if top else None,
                         "p99_ms": top["latency_ms"]["p99_ms"] if top else None,
                         "limited_by": limit}}


FLAGS = [
        Flag("clients", int, 1000, 20, "connected clients"),
        Flag("rates", str, "1000,2000,4000,6000,8000,12000,16000,24000,32000", "50,100",
             "aggregate DMs per second, one step each"),
        Flag("seconds", float, 5.0, 0.5, "length of each step"),
        Flag("peers", int, 4, 3, "contacts per client (0: anyone, paying DM creation in the steps)"),
        Flag("warmup_rate", float, 2000.0, 500.0, "DMs per second of the warm-up that creates the DMs"),
        Flag("p99_ms", float, 50.0, 50.0, "p99 bound of a passing step"),
        Flag("drain", float, 3.0, 2.0, "seconds to wait for late deliveries after a step"),
        Flag("max_fail", int, 2, 2, "stop after this many failing steps in a row"),
        Flag("concurrency", int, 100, 20, "handshakes in flight while connecting"),
]

SCENARIO = Scenario(
    name="dm", help="clients DMing random others at stepped aggregate rates", run=run, flags=FLAGS,
    headlines=[Headline("rate_per_s", "dm: highest rate with p99 < 50 ms, no loss (msg/s)", True)],
)
