"""share: one user sharing a video card to ``--targets`` users per request, stepped.

Targets are drawn from a pool of ``--pool`` connected users; a warm-up share to
the whole pool creates the DMs first. Headline: deliveries per second at the
highest step with p99 < ``--p99-ms`` and no loss.
"""

from __future__ import annotations

from typing import Any

from ..systems import Server
from .base import Ctx, Flag, Headline, Scenario, floats
from .stepped import best, run_steps, warm_up


def run(ctx: Ctx, server: Server) -> dict[str, Any]:
    o = ctx.opts
    sharer = "sharer"
    pool = [f"r{i}" for i in range(o.pool)]
    users = [sharer, *pool]
    connected = ctx.connect(users, o.concurrency)
    w = ctx.worker_of(users, sharer)
    k = min(o.targets, len(pool))
    chunks = [pool[i:i + k] for i in range(0, len(pool), k)]
    plan = {"kind": "share_each", "rate": 200.0, "sharer": sharer, "chunks": chunks}
    warm = warm_up(ctx, server, {w: plan}, len(chunks) / 200 + 1, len(pool))
    steps = run_steps(
        ctx, server, rates=floats(o.rates), seconds=o.seconds,
        plans=lambda rate: {w: {"kind": "share", "rate": rate, "sharer": sharer, "pool": pool, "targets": k}},
        expect=lambda sent: sent * k, p99_ms=o.p99_ms, drain_s=o.drain, max_fail=o.max_fail,
    )
    top, limit = best(steps)
    return {"connect": connected, "warmup": warm, "steps": steps, "targets": k,
            "headline": {"deliveries_per_s": top["delivered_per_s"] if top else None,
                         "shares_per_s": top["offered_per_s"] if top else None,
                         "p99_ms": top["latency_ms"]["p99_ms"] if top else None,
                         "limited_by": limit}}


SCENARIO = Scenario(
    name="share", help="one user sharing a video card to many per request, stepped", run=run,
    flags=[
        Flag("pool", int, 200, 12, "connected users the targets are drawn from"),
        Flag("targets", int, 50, 5, "users per share"),
        Flag("rates", str, "10,20,50,100,150,200,300,400", "5,10", "shares per second, one step each"),
        Flag("seconds", float, 5.0, 0.5, "length of each step"),
        Flag("p99_ms", float, 100.0, 100.0, "p99 bound of a passing step"),
        Flag("drain", float, 3.0, 2.0, "seconds to wait for late deliveries after a step"),
        Flag("max_fail", int, 2, 2, "stop after this many failing steps in a row"),
        Flag("concurrency", int, 100, 20, "handshakes in flight while connecting"),
    ],
    headlines=[Headline("deliveries_per_s", "share: deliveries/s with p99 < 100 ms, no loss", True)],
)
