"""fanout: one group of ``--members`` members, random members posting at stepped rates.

Every post reaches all other members. Headline: deliveries per second at the
highest step with p99 < ``--p99-ms`` and no loss.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..systems import Server
from .base import Ctx, Flag, Headline, Scenario, floats
from .stepped import best, run_steps


def run(ctx: Ctx, server: Server) -> dict[str, Any]:
    o = ctx.opts
    users = [f"m{i}" for i in range(o.members)]
    connected = ctx.connect(users, o.concurrency)
    owner = users[0]
    gid = ctx.pool.call(ctx.worker_of(users, owner), "create_group", timeout=120, owner=owner,
                        room="fanout", members=users)
    ctx.pool.call_all("join", timeout=120, gid=gid, skip=owner)
    n = len(ctx.pool)
    fan = o.members - 1
    steps = run_steps(
        ctx, server, rates=floats(o.rates), seconds=o.seconds,
        plans=lambda rate: {i: {"kind": "room", "rate": rate / n, "gid": gid} for i in range(n)},
        expect=lambda sent: sent * fan, p99_ms=o.p99_ms, drain_s=o.drain, max_fail=o.max_fail,
    )
    top, limit = best(steps)
    return {"connect": connected, "steps": steps, "fan": fan,
            "headline": {"deliveries_per_s": top["delivered_per_s"] if top else None,
                         "posts_per_s": top["offered_per_s"] if top else None,
                         "p99_ms": top["latency_ms"]["p99_ms"] if top else None,
                         "limited_by": limit}}


def hub_args(o: argparse.Namespace) -> list[str]:
    return ["--max-group-members", str(max(1000, o.members))]


SCENARIO = Scenario(
    name="fanout", help="one big group, stepped post rate", run=run, clipwire_args=hub_args,
    flags=[
        Flag("members", int, 1000, 20, "group members, all connected"),
        Flag("rates", str, "5,10,20,40,60,80,120,160", "5,10", "group posts per second, one step each"),
        Flag("seconds", float, 5.0, 0.5, "length of each step"),
        Flag("p99_ms", float, 100.0, 100.0, "p99 bound of a passing step"),
        Flag("drain", float, 3.0, 2.0, "seconds to wait for late deliveries after a step"),
        Flag("max_fail", int, 2, 2, "stop after this many failing steps in a row"),
        Flag("concurrency", int, 100, 20, "handshakes in flight while connecting"),
    ],
    headlines=[Headline("deliveries_per_s", "fanout: deliveries/s with p99 < 100 ms, no loss", True)],
)
