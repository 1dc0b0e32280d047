"""How many messages per second does one hub store and deliver?

Starts ``clipwire serve`` in its own process on a fresh SQLite file, connects
``--clients`` users, and has each keep ``--window`` DMs in flight to random
others for ``--seconds``. Prints and records acknowledged (stored) and
delivered messages per second. A quick gauge; the full suite is the load
generator.

    python -m benchmarks.throughput --clients 200 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from clipwire.protocol import decode, encode
from clipwire.server import sign_token

SECRET = "benchmark-secret-benchmark-secret-0123"
RESULTS = Path(__file__).parent / "results"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_hub(db: str, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "CLIPWIRE_SECRET": SECRET, "CLIPWIRE_LOG_LEVEL": "WARNING",
           "CLIPWIRE_DM_POLICY": "everyone", "CLIPWIRE_RATE_SEND_PER_S": "1000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipwire.server", "serve", "--port", "0", "--db", db, *extra],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    found = re.search(r"(ws://\S+/ws)", proc.stdout.readline())
    if not found:
        proc.kill()
        raise SystemExit("the hub did not start")
    return proc, found.group(1)


class Run:
    """Shared by all clients: counts, and when to stop (set once all are connected)."""

    def __init__(self, clients: int) -> None:
        self.acked = self.delivered = self.errors = 0
        self.stop_at = float("inf")
        self.ready = asyncio.Barrier(clients + 1)


async def run_client(url: str, user: str, users: list[str], window: int, run: Run) -> None:
    ws: ClientConnection = await connect(url, max_queue=None)
    await ws.send(encode({"t": "hello", "id": 0, "v": 1, "token": sign_token(SECRET, user)}))
    assert decode(await ws.recv())["t"] == "ok"
    # A few fixed peers each, so the DMs exist after the first round and the
    # run measures messages, not conversation creation.
    me = users.index(user)
    peers = [users[(me + k) % len(users)] for k in (1, 2, 3, 5)]
    await run.ready.wait()
    stop_at = run.stop_at
    in_flight = 0
    next_id = 1

    async def send_one() -> None:
        nonlocal next_id, in_flight
        to = random.choice(peers)
        await ws.send(encode({"t": "send", "id": next_id, "to": to, "cmid": f"{user}-{next_id}",
                              "text": "benchmark message with a modest body"}))
        next_id += 1
        in_flight += 1

    for _ in range(window):
        await send_one()
    deadline_read = stop_at + 2
    while time.monotonic() < deadline_read:
        try:
            data = await asyncio.wait_for(ws.recv(), max(0.05, deadline_read - time.monotonic()))
        except TimeoutError:
            break
        frame: dict[str, Any] = decode(data)  # type: ignore[arg-type]
        if frame["t"] == "ok":
            in_flight -= 1
            if time.monotonic() < stop_at:
                run.acked += 1
                await send_one()
        elif frame["t"] == "msg":
            if time.monotonic() < stop_at:
                run.delivered += 1
        elif frame["t"] == "error":
            run.errors += 1
            if run.errors <= 3:
                print("error:", frame, file=sys.stderr)
            in_flight -= 1
        if time.monotonic() >= stop_at and in_flight == 0:
            break
    await ws.close()


async def measure(url: str, clients: int, window: int, seconds: float) -> dict[str, Any]:
    users = [f"user{i}" for i in range(clients)]
    run = Run(clients)
    tasks = [asyncio.create_task(run_client(url, u, users, window, run)) for u in users]
    run.stop_at = time.monotonic() + 1 + seconds  # clients read it after the barrier
    await run.ready.wait()
    run.stop_at = time.monotonic() + seconds
    await asyncio.gather(*tasks)
    return {"acked_per_s": run.acked / seconds, "delivered_per_s": run.delivered / seconds,
            "errors": run.errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--window", type=int, default=4, help="DMs in flight per client")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--hub-arg", action="append", default=[], help="extra flag for clipwire serve")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_hub(str(Path(tmp) / "bench.db"), args.hub_arg)
        try:
            print(f"hub at {url}; {args.clients} clients, window {args.window}, {args.seconds:.0f} s",
                  flush=True)
            hub_cpu, own_cpu = cpu_seconds(proc.pid), time.process_time()
            result = asyncio.run(measure(url, args.clients, args.window, args.seconds))
            # CPU over the whole run (connect, measure, drain), as a share of one core.
            result["hub_cpu_s"] = round(cpu_seconds(proc.pid) - hub_cpu, 2)
            result["generator_cpu_s"] = round(time.process_time() - own_cpu, 2)
        finally:
            proc.terminate()
            proc.wait(10)
    record = {
        "benchmark": "throughput", "settings": vars(args), "result": result,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "throughput.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"stored {result['acked_per_s']:.0f} msg/s, delivered {result['delivered_per_s']:.0f} msg/s, "
          f"errors {result['errors']}; CPU seconds: hub {result['hub_cpu_s']}, "
          f"generator {result['generator_cpu_s']}")


if __name__ == "__main__":
    main()
