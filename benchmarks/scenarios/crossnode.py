"""cross-node: the latency and dm scenarios with sender and recipient on different processes.

Each system runs as two nodes pinned to the hub's core with a private Redis
(also on that core) between them: Clipwire as two ``clipwire serve
--redis-url`` processes sharing one SQLite file, Socket.IO (and
python-socketio) as two processes with their Redis adapter. Users ``u0``,
``u1``, ... alternate between the nodes, and every contact of a user sits
on the other node, so every measured message crosses Redis.
"""

from __future__ import annotations

from typing import Any

from ..systems import Server
from . import dm, latency
from .base import Ctx, Flag, Headline, Scenario

NODES = 2


def run(ctx: Ctx, server: Server) -> dict[str, Any]:
    o = ctx.opts
    ping = latency.measure(ctx, "lat0", "lat1", o.pings, o.ping_warmup, o.ping_seconds)
    ctx.pool.call_all("close_all", timeout=60)
    dms = dm.measure(ctx, server, nodes=NODES)
    return {"nodes": NODES, "latency": ping, "dm": dms,
            "headline": {"rate_per_s": dms["headline"]["rate_per_s"],
                         "limited_by": dms["headline"].get("limited_by"),
                         "p50_ms": ping["headline"]["p50_ms"], "p99_ms": ping["headline"]["p99_ms"]}}


def _dm_flags() -> list[Flag]:
    cross = {"rates": "1000,2000,4000,6000,8000,12000,16000,20000,24000"}
    return [Flag(f.name, f.type, cross.get(f.name, f.default), f.tiny, f.help) for f in dm.FLAGS]


SCENARIO = Scenario(
    name="cross-node", run=run, nodes=NODES, systems=("clipwire", "socketio", "python-socketio"),
    help="latency and dm with sender and recipient on two processes joined by Redis",
    flags=[
        Flag("pings", int, 10000, 200, "one-way messages measured by the latency part"),
        Flag("ping_warmup", int, 200, 20, "one-way messages before measuring"),
        Flag("ping_seconds", float, 60.0, 10.0, "time limit of the latency part"),
        *_dm_flags(),
    ],
    headlines=[Headline("rate_per_s", "cross-node dm: highest rate with p99 < 50 ms (msg/s)", True),
               Headline("p50_ms", "cross-node latency: p50 one-way (ms)", False),
               Headline("p99_ms", "cross-node latency: p99 one-way (ms)", False)],
)
