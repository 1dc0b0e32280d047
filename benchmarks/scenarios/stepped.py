"""Stepped open-loop load, shared by ``dm``, ``fanout`` and ``share``.

Each step offers a fixed aggregate rate for a fixed time, waits (bounded) for
every expected delivery, then reads the merged histogram, loss, and the CPU of
the hub and of each generator process. A step passes when nothing was lost,
p99 is under the scenario's bound, and the generator really offered the rate
(it sent what was planned, on time); the headline is the best passing step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .. import hist
from ..procinfo import busy_seconds_per_cpu, cpu_seconds, descendants, machine_busy_seconds
from ..quiet import wait_quiet
from ..systems import Server
from .base import Ctx

LAG_OK_MS = 10.0  # a pacer later than this at p99 (or a quarter of the p99 bound) did not offer the rate
GEN_BUSY_PCT = 90.0  # a generator process this busy may be what limits the step
POLL_S = 0.1

Plans = dict[int, dict[str, Any]]


def run_step(ctx: Ctx, server: Server, step: int, rate: float, seconds: float, plans: Plans,
             expect: Callable[[int], int], drain_s: float, p99_ms: float, title: str) -> dict[str, Any]:
    """One step: ``plans[i]`` are worker ``i``'s ``send`` arguments (its share of ``rate``)."""
    pool, progress = ctx.pool, ctx.progress
    total = round(sum(p["rate"] for p in plans.values()) * seconds)
    shares = _split(total, [p["rate"] for p in plans.values()])
    plans = {i: {"count": n, **p} for (i, p), n in zip(plans.items(), shares, strict=True)}
    before = pool.call_all("stats", step=step, final=True)
    hub0, busy0, own0 = _cpu(server), machine_busy_seconds(), time.process_time()
    per_cpu0 = busy_seconds_per_cpu()
    t0 = time.monotonic()
    rids = {i: pool.submit(i, "send", step=step, seconds=seconds, **plan) for i, plan in plans.items()}
    planned_total = total
    while not all(pool.ready(i, rid) for i, rid in rids.items()):
        if time.monotonic() - t0 > seconds + 60:
            break
        live = pool.call_all("stats", step=step)
        progress.update(f"{title}: sending {sum(s['sending'] for s in live):,}/{planned_total:,}, "
                        f"delivered {sum(s['delivered'] for s in live):,}  "
                        f"[{time.monotonic() - t0:.1f}/{seconds:.1f} s]")
        time.sleep(POLL_S * 2.5)
    sends = [pool.result(i, rid, 30) for i, rid in rids.items()]
    sent = sum(s["sent"] for s in sends)
    planned = sum(s["planned"] for s in sends)
    expected = expect(sent)
    drain_end = time.monotonic() + drain_s
    while True:
        live = pool.call_all("stats", step=step)
        delivered = sum(s["delivered"] for s in live)
        if delivered >= expected or time.monotonic() > drain_end:
            break
        progress.update(f"{title}: draining, delivered {delivered:,}/{expected:,}")
        time.sleep(POLL_S / 2)
    final = pool.call_all("stats", step=step, final=True)
    wall = time.monotonic() - t0
    hub_cpu = (_cpu(server) - hub0) / wall * 100
    gen_cpu = [round((f["cpu_s"] - b["cpu_s"]) / wall * 100, 1) for b, f in zip(before, final, strict=True)]
    # Busy CPU on the whole machine that none of our processes was charged for: other
    # processes (a shared machine) and kernel work such as loopback networking in softirq.
    busy = (machine_busy_seconds() - busy0) / wall * 100
    own = (time.process_time() - own0) / wall * 100
    other = busy - hub_cpu - sum(gen_cpu) - own
    per_cpu1 = busy_seconds_per_cpu()
    cpu_busy = {c: round((per_cpu1[c] - t) / wall * 100, 1) for c, t in per_cpu0.items() if c in per_cpu1}
    delivered = sum(f["delivered"] for f in final)
    latency = hist.summary(hist.merge(f["hist"] for f in final))
    lag = hist.summary(hist.merge(s["lag"] for s in sends))
    # Rates are over the step's length, or longer when sending or delivery ran late.
    start_ns = min((s["start_ns"] for s in sends), default=0)
    send_s = max(seconds, (max((s["end_ns"] for s in sends), default=0) - start_ns) / 1e9)
    window_s = max(seconds, (max(f["last_ns"] for f in final) - start_ns) / 1e9)
    errors = sum(f["errors"] for f in final) - sum(b["errors"] for b in before)
    lost = max(0, expected - delivered)
    # A fan-out burst arriving in a worker holds up its pacer for a few ms without changing what is
    # offered (latency is stamped at the real send), so the allowed lag grows with the p99 bound.
    offered_ok = sent >= 0.99 * planned and (lag["p99_ms"] or 0) <= max(LAG_OK_MS, p99_ms / 4)
    # Saturated: a worker process, or every generator core (whoever was charged for it), near 100 %.
    gen_core_busy = [cpu_busy.get(c, 0.0) for c in ctx.gen_cpus] if ctx.gen_cpus else []
    gen_busy = bool(gen_cpu) and (max(gen_cpu) >= GEN_BUSY_PCT or
                                  (bool(gen_core_busy) and min(gen_core_busy) >= GEN_BUSY_PCT))
    p99 = latency["p99_ms"]
    ok = offered_ok and lost == 0 and p99 is not None and p99 < p99_ms
    return {
        "step": step, "offered_per_s": rate, "seconds": seconds, "planned": planned, "sent": sent,
        "sent_per_s": round(sent / send_s, 1), "expected": expected, "delivered": delivered,
        "delivered_per_s": round(delivered / window_s, 1), "lost": lost,
        "loss_pct": round(100 * lost / expected, 3) if expected else 0.0,
        "errors": errors, "send_errors": sum(s["send_errors"] for s in sends),
        "first_send_error": next((s["first_error"] for s in sends if s["first_error"]), None),
        "closed_clients": sum(f["closed"] for f in final),
        "latency_ms": latency, "send_lag_ms": lag,
        "hub_cpu_pct": round(hub_cpu, 1), "gen_cpu_pct": gen_cpu, "gen_busy": gen_busy,
        "coordinator_cpu_pct": round(own, 1), "machine_busy_pct": round(busy, 1),
        "unattributed_cpu_pct": round(other, 1), "cpu_busy_pct": cpu_busy,
        "offered_ok": offered_ok, "ok": ok,
    }


def _cpu(server: Server) -> float:
    """CPU seconds of every process of the system under test (its nodes or workers, their Redis)."""
    pids = {p for pid in server.pids for p in (pid, *descendants(pid))}
    return sum(cpu_seconds(pid) for pid in pids)


def _split(total: int, weights: list[float]) -> list[int]:
    """``total`` sends dealt in proportion to ``weights``, summing exactly to ``total``."""
    whole = sum(weights) or 1.0
    counts = [int(total * w / whole) for w in weights]
    for i in range(total - sum(counts)):
        counts[i % len(counts)] += 1
    return counts


def step_line(title: str, s: dict[str, Any]) -> str:
    lat = s["latency_ms"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    verdict = "ok" if s["ok"] else ("FAIL (generator)" if not s["offered_ok"] else "FAIL")
    return (f"{title}: offered {s['offered_per_s']:,.0f}/s sent {s['sent_per_s']:,.0f}/s "
            f"delivered {s['delivered_per_s']:,.0f}/s loss {s['lost']} p50 {ms(lat['p50_ms'])} "
            f"p99 {ms(lat['p99_ms'])} ms | hub {s['hub_cpu_pct']:.0f}% "
            f"gen {'+'.join(f'{c:.0f}' for c in s['gen_cpu_pct'])}%{' (busy)' if s['gen_busy'] else ''} | "
            f"CPUs {' '.join(f'{c}:{v:.0f}%' for c, v in sorted(s['cpu_busy_pct'].items()))} | {verdict}")


def run_steps(ctx: Ctx, server: Server, *, rates: list[float], seconds: float,
              plans: Callable[[float], Plans], expect: Callable[[int], int], p99_ms: float,
              drain_s: float, max_fail: int, settle_s: float = 0.3) -> list[dict[str, Any]]:
    """Step through ``rates`` (ascending) until ``max_fail`` steps in a row fail."""
    steps: list[dict[str, Any]] = []
    fails = 0
    for k, rate in enumerate(rates, start=1):
        title = f"{ctx.label} step {k}/{len(rates)} {rate:,.0f}/s"
        background = wait_quiet(ctx.quiet_wait, title, ctx.progress)
        s = run_step(ctx, server, k, rate, seconds, plans(rate), expect, drain_s, p99_ms, title)
        s["background_busy_pct"] = background
        ctx.progress.done(step_line(f"{ctx.label} step {k}/{len(rates)}", s))
        steps.append(s)
        fails = 0 if s["ok"] else fails + 1
        if fails >= max_fail:
            break
        time.sleep(settle_s)
    return steps


def best(steps: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The passing step with the highest offered rate, and what stopped the climb."""
    passing = [s for s in steps if s["ok"]]
    top = max(passing, key=lambda s: s["offered_per_s"]) if passing else None
    after = [s for s in steps if not s["ok"] and (top is None or s["offered_per_s"] > top["offered_per_s"])]
    if not after:
        limit = "none reached: raise --rates" if top else "no steps"
    elif not after[0]["offered_ok"] or after[0]["gen_busy"]:
        limit = "generator"
    else:
        limit = "system"
    return top, limit


def warm_up(ctx: Ctx, server: Server, plans: Plans, seconds: float, expected: int,
            drain_s: float = 30.0) -> dict[str, Any]:
    """Step 0: create what the measured steps should not pay for (DMs), waited for in full."""
    s = run_step(ctx, server, 0, sum(p["rate"] for p in plans.values()), seconds, plans,
                 lambda sent: expected, drain_s, float("inf"), f"{ctx.label} warm-up")
    ctx.progress.done(f"{ctx.label} warm-up: {s['sent']:,} sent, {s['delivered']:,}/{expected:,} delivered, "
                      f"{s['errors']} refused")
    return {"sent": s["sent"], "delivered": s["delivered"], "expected": expected, "errors": s["errors"]}
