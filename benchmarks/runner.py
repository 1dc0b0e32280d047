"""Runs scenarios against systems in one sitting and records everything about the run.

Systems are interleaved per scenario (their order alternating from one
scenario to the next), each on a fresh server pinned to the hub's core,
while one pool of worker processes, pinned to the generator's cores, drives
them all.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from . import procinfo, systems
from .pool import Pool
from .progress import Progress
from .quiet import wait_quiet
from .scenarios import SKIPPED, Ctx, Scenario


def run(scenarios: list[tuple[Scenario, argparse.Namespace]], system_names: list[str],
        setup: dict[str, Any], progress: Progress) -> dict[str, Any]:
    record: dict[str, Any] = {
        "suite": "clipwire-bench", "format": 1, "command": sys.argv[1:],
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": procinfo.machine(), "versions": procinfo.versions(), "git": procinfo.git_commit(),
        "setup": setup, "scenarios": {},
    }
    procinfo.pin_self(setup["gen_cpus"])
    pool = Pool(setup["procs"], setup["gen_cpus"])
    workdir = Path(tempfile.mkdtemp(prefix="clipwire-bench-"))
    try:
        for index, (scenario, opts) in enumerate(scenarios):
            entry: dict[str, Any] = {"name": scenario.name,
                                     "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                     "git": record["git"], "machine": record["machine"], "setup": setup,
                                     "options": {k: v for k, v in vars(opts).items()}, "systems": {}}
            record["scenarios"][scenario.name] = entry
            if scenario.name in SKIPPED:
                entry["skipped"] = SKIPPED[scenario.name]
                progress.done(f"[{scenario.name}] skipped: {SKIPPED[scenario.name]}")
                continue
            order = [s for s in system_names if scenario.supports(s)]
            if index % 2:
                order.reverse()
            for system in order:
                entry["systems"][system] = _run_one(scenario, opts, system, pool, setup, workdir, progress)
    finally:
        pool.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return record


def _run_one(scenario: Scenario, opts: argparse.Namespace, system: str, pool: Pool, setup: dict[str, Any],
             workdir: Path, progress: Progress) -> dict[str, Any]:
    label = f"[{scenario.name} {system}]"
    background = wait_quiet(setup.get("quiet_wait", 0.0), label, progress)
    started = time.monotonic()
    server = None
    try:
        extra = scenario.clipwire_args(opts) if scenario.clipwire_args else []
        server = systems.start(system, cpu=setup["hub_cpu"], workdir=workdir / f"{scenario.name}-{system}",
                               clipwire_args=extra, nodes=scenario.nodes,
                               workers=setup.get("workers", 1))
        options = {**server.options, "sio_client": setup.get("sio_client", "fast")}
        pool.call_all("use", system=system, url=server.url, options=options)
        ctx = Ctx(pool=pool, progress=progress, opts=opts, gen_cpus=setup["gen_cpus"],
                  workdir=workdir, seed=setup["seed"], label=label,
                  quiet_wait=setup.get("quiet_wait", 0.0))
        result = scenario.run(ctx, server)
    except Exception as exc:
        progress.done(f"{label} FAILED: {exc}")
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                  "headline": {}}
    finally:
        try:
            pool.call_all("close_all", timeout=60)
        except Exception as exc:  # a dead worker is reported by the next call anyway
            progress.done(f"{label} closing clients failed: {exc}")
        if server is not None:
            server.stop()
    result["elapsed_s"] = round(time.monotonic() - started, 2)
    result["background_busy_pct"] = background
    return result
