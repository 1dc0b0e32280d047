"""storm: every client drops at once and reconnects at once; time until all are back.

On Clipwire each client holds a DM with a feeder; while they are offline the
feeder stores ``--missed`` more messages in each, so "back" means
reconnected, resumed and holding them. Peers keep nothing, so for them "back"
means connected and authenticated again.
"""

from __future__ import annotations

import time
from typing import Any

from .. import hist
from ..systems import Server
from .base import Ctx, Flag, Headline, Scenario, ScenarioError

FEEDER = "feeder"


def _wait_delivered(ctx: Ctx, expected: int, limit_s: float) -> int:
    deadline = time.monotonic() + limit_s
    while True:
        got = sum(s["delivered"] for s in ctx.pool.call_all("stats", step=0))
        if got >= expected or time.monotonic() > deadline:
            return int(got)
        time.sleep(0.05)


def run(ctx: Ctx, server: Server) -> dict[str, Any]:
    o = ctx.opts
    users = [f"c{i}" for i in range(o.clients)]
    connected = ctx.connect(users, o.concurrency)
    resumes = server.system == "clipwire"
    missed = o.missed if resumes else 0
    if resumes:
        ctx.pool.call(0, "connect", users=[FEEDER], concurrency=1)
        ctx.progress.update(f"{ctx.label}: feeding one message to each client")
        ctx.pool.call(0, "feed", timeout=o.seconds + 60, feeder=FEEDER, users=users, count=1, window=200)
        got = _wait_delivered(ctx, o.clients, o.seconds)
        if got < o.clients:
            raise ScenarioError(f"only {got} of {o.clients} clients got their first message")
    ctx.pool.call_all("drop", timeout=o.seconds + 30, keep=[FEEDER])
    if missed:
        ctx.progress.update(f"{ctx.label}: storing {missed} message(s) for each offline client")
        ctx.pool.call(0, "feed", timeout=o.seconds + 60, feeder=FEEDER, users=users, count=missed, window=200)
    ctx.progress.update(f"{ctx.label}: {o.clients:,} clients reconnecting at once")
    at = time.monotonic_ns() + 300_000_000  # every worker starts on the same tick
    results = ctx.pool.call_all("reconnect", timeout=o.seconds + 60, at_ns=at, limit_s=o.seconds)
    failed = sum(r["failed"] for r in results)
    back = sum(r["back"] for r in results)
    all_back_s = (max(r["last_ns"] for r in results) - at) / 1e9 if back else None
    per = hist.summary(hist.merge(r["hist"] for r in results))
    received = sum(r["received"] for r in results)
    ctx.progress.done(f"{ctx.label}: {back:,}/{o.clients:,} back in "
                      f"{'-' if all_back_s is None else f'{all_back_s:.2f}'} s (p50 {per['p50_ms']} "
                      f"p99 {per['p99_ms']} ms), {failed} failed, "
                      f"{sum(r['retries'] for r in results)} retries"
                      + (f", {received:,}/{missed * o.clients:,} missed messages replayed" if missed else ""))
    if missed and received < missed * o.clients:
        raise ScenarioError(f"resume replayed {received} of {missed * o.clients} missed messages")
    return {"connect": connected, "back": back, "failed": failed, "missed_each": missed,
            "replayed": received, "retries": sum(r["retries"] for r in results), "back_ms": per,
            "first_error": next((r["first_error"] for r in results if r["first_error"]), None),
            "headline": {"storm_s": round(all_back_s, 3) if all_back_s is not None and not failed else None}}


SCENARIO = Scenario(
    name="storm", help="all clients reconnect at once (with resume on Clipwire)", run=run,
    flags=[
        Flag("clients", int, 2000, 20, "clients that drop and come back"),
        Flag("missed", int, 1, 1, "messages stored for each client while it is away (Clipwire)"),
        Flag("concurrency", int, 100, 20, "handshakes in flight for the first connect"),
        Flag("seconds", float, 60.0, 20.0, "time limit for the storm"),
    ],
    headlines=[Headline("storm_s", "storm: time until every client is back (s)", False)],
)
