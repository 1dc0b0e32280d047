"""resume (Clipwire only): a client offline while messages pile up, then reconnecting.

The target first receives one message in each of ``--convs`` DMs (so it holds
a resume point), goes offline, and ``--messages`` are stored across those DMs.
It then reconnects with ``resume`` and takes the backlog, answering ``gap``
events by paging ``history``, until it holds everything; that time is the
headline. Runs in the coordinator: one client needs no worker processes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..drivers.clipwire import ClipwireConn, ClipwireDriver
from ..systems import Server
from .base import Ctx, Flag, Headline, Scenario, ScenarioError


def _ignore(body: str) -> None:
    return None


async def _resume(url: str, options: dict[str, Any], messages: int, convs: int, window: int,
                  limit_s: float) -> dict[str, Any]:
    driver = ClipwireDriver(url, {**options, "timeout": limit_s})
    target = await driver.connect("target", _ignore)
    senders = await asyncio.gather(*(driver.connect(f"s{i}", _ignore) for i in range(convs)))
    for s in senders:
        await s.send_acked("target", "0|0|first")
    deadline = time.monotonic() + limit_s
    while target.received < convs and time.monotonic() < deadline:  # noqa: ASYNC110 - a bounded poll
        await asyncio.sleep(0.01)
    await target.close()

    t0 = time.monotonic()

    async def pile(sender: ClipwireConn, count: int) -> None:
        sem = asyncio.Semaphore(window)

        async def one(i: int) -> None:
            async with sem:
                await sender.send_acked("target", f"0|0|backlog {i}")

        await asyncio.gather(*(one(i) for i in range(count)))

    share = [messages // convs + (1 if i < messages % convs else 0) for i in range(convs)]
    await asyncio.gather(*(pile(s, n) for s, n in zip(senders, share, strict=True)))
    stored_s = time.monotonic() - t0

    t1 = time.monotonic()
    back = await driver.reconnect(target, _ignore)
    took = time.monotonic() - t1
    result = {"seconds": round(took, 3), "messages": messages, "convs": convs, "received": back.received,
              "duplicates": back.duplicates, "history_pages": back.pages, "store_s": round(stored_s, 3),
              "stored_per_s": round(messages / stored_s, 1)}
    await asyncio.gather(back.close(), *(s.close() for s in senders))
    return result


def run(ctx: Ctx, server: Server) -> dict[str, Any]:
    o = ctx.opts
    import uvloop

    ctx.progress.update(f"{ctx.label}: storing {o.messages:,} messages for an offline client")
    r = uvloop.run(_resume(server.url, server.options, o.messages, o.convs, o.window, o.seconds))
    if r["received"] != o.messages:
        raise ScenarioError(f"resume delivered {r['received']} of {o.messages} messages")
    ctx.progress.done(f"{ctx.label}: {o.messages:,} messages in {o.convs} DMs back in {r['seconds']:.3f} s "
                      f"({r['history_pages']} history pages, {r['duplicates']} repeats dropped; "
                      f"stored at {r['stored_per_s']:,.0f}/s)")
    return {**r, "headline": {"resume_s": r["seconds"]}}


SCENARIO = Scenario(
    name="resume", help="Clipwire only: reconnect with resume after a backlog piled up", run=run,
    systems=("clipwire",),
    flags=[
        Flag("messages", int, 10000, 500, "messages stored while the client is offline"),
        Flag("convs", int, 10, 2, "DMs they are spread over (one sender each)"),
        Flag("window", int, 100, 50, "stores in flight per sender while piling up"),
        Flag("seconds", float, 120.0, 30.0, "time limit for each phase"),
    ],
    headlines=[Headline("resume_s", "resume: time until the whole backlog is held (s)", False)],
)
