"""latency: two clients DM ping-pong with nothing else running.

Each delivery triggers the reply, so exactly one message is in flight; every
one-way send-to-delivery time is recorded (after ``--warmup`` bounces, which
also create the DM).
"""

from __future__ import annotations

from typing import Any

from .. import hist
from ..systems import Server
from .base import Ctx, Flag, Headline, Scenario


def run(ctx: Ctx, server: Server) -> dict[str, Any]:
    o = ctx.opts
    return measure(ctx, "lat-a", "lat-b", o.count, o.warmup, o.seconds)


def measure(ctx: Ctx, a: str, b: str, count: int, warmup: int, seconds: float) -> dict[str, Any]:
    """Ping-pong between ``a`` and ``b`` (named for the nodes they sit on when there are several)."""
    ctx.pool.call(0, "connect", users=[a, b], concurrency=2)
    ctx.progress.update(f"{ctx.label}: {count:,} one-way messages")
    r = ctx.pool.call(0, "pingpong", timeout=seconds + 30, a=a, b=b, count=count, warmup=warmup,
                      seconds=seconds)
    s = hist.summary(hist.merge([r["hist"]]))
    ctx.progress.done(f"{ctx.label}: {s['count']:,} messages p50 {s['p50_ms']} p99 {s['p99_ms']} "
                      f"p99.9 {s['p999_ms']} ms{' (timed out)' if r['timed_out'] else ''}")
    return {"latency_ms": s, "timed_out": r["timed_out"],
            "headline": {"p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"], "p999_ms": s["p999_ms"]}}


SCENARIO = Scenario(
    name="latency", help="two clients, unloaded DM ping-pong", run=run,
    flags=[
        Flag("count", int, 10000, 200, "one-way messages measured"),
        Flag("warmup", int, 200, 20, "one-way messages before measuring"),
        Flag("seconds", float, 60.0, 10.0, "time limit"),
    ],
    headlines=[Headline("p50_ms", "latency: p50 one-way (ms)", False),
               Headline("p99_ms", "latency: p99 one-way (ms)", False),
               Headline("p999_ms", "latency: p99.9 one-way (ms)", False)],
)
