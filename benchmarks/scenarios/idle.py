"""idle: N connected, authenticated clients; server memory per connection and connect time.

RSS is the server process's VmRSS, read after one probe client has connected
(so lazy start-up costs are not charged to the connections) and again once all
clients are connected and ``--settle`` seconds have passed.
"""

from __future__ import annotations

import time
from typing import Any

from ..procinfo import rss_kib
from ..systems import Server
from .base import Ctx, Flag, Headline, Scenario, ScenarioError


def run(ctx: Ctx, server: Server) -> dict[str, Any]:
    o = ctx.opts
    ctx.pool.call(0, "connect", users=["probe"], concurrency=1)
    time.sleep(o.settle)
    before = rss_kib(server.pid)
    users = [f"i{i}" for i in range(o.clients)]
    ctx.progress.update(f"{ctx.label}: connecting {o.clients:,} clients")
    connected = ctx.connect(users, o.concurrency)
    time.sleep(o.settle)
    after = rss_kib(server.pid)
    if before is None or after is None:
        raise ScenarioError("the server process is gone")
    per_conn = (after - before) / o.clients
    c = connected["connect_ms"]
    ctx.progress.done(f"{ctx.label}: {o.clients:,} clients, RSS {before / 1024:.1f} -> "
                      f"{after / 1024:.1f} MiB "
                      f"= {per_conn:.1f} KiB/conn; connected in {connected['seconds']:.2f} s "
                      f"(p50 {c['p50_ms']} p99 {c['p99_ms']} ms)")
    return {"rss_before_kib": before, "rss_after_kib": after, "connect": connected,
            "headline": {"rss_per_conn_kib": round(per_conn, 2), "connect_s": connected["seconds"],
                         "connect_p99_ms": c["p99_ms"]}}


SCENARIO = Scenario(
    name="idle", help="N idle authenticated clients: server RSS per connection, connect time", run=run,
    flags=[
        Flag("clients", int, 5000, 20, "clients to connect"),
        Flag("concurrency", int, 100, 20, "handshakes in flight (all workers together)"),
        Flag("settle", float, 2.0, 0.3, "seconds to wait before reading RSS"),
    ],
    headlines=[Headline("rss_per_conn_kib", "idle: server RSS per connection (KiB)", False),
               Headline("connect_s", "idle: time to connect all (s)", False)],
)
