"""``python -m benchmarks``: one subcommand per scenario, ``all``, and ``check``."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from . import procinfo, systems
from .progress import Progress
from .report import DEFAULT_OUT, LATEST, save
from .scenarios import SCENARIOS, Scenario

DESCRIPTION = ("Clipwire's load generator and benchmark suite: every scenario against Clipwire and its "
               "peers (Socket.IO on Node, python-socketio, a bare websockets relay) in one sitting.")


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--systems", default=None,
                   help=f"comma-separated, from {','.join(systems.SYSTEMS)} [every available one]")
    g.add_argument("--procs", type=int, default=2, help="generator worker processes [2]")
    g.add_argument("--hub-cpu", type=int, default=None, help="CPU for the server under test [0 on 2+ CPUs]")
    g.add_argument("--gen-cpus", default=None, help="CPUs for the generator, e.g. 1 or 1-3 [the others]")
    g.add_argument("--no-pin", action="store_true", help="pin nothing")
    g.add_argument("--tiny", action="store_true", help="tiny sizes that finish in seconds (smoke runs)")
    g.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results directory [{DEFAULT_OUT}]")
    g.add_argument("--sio-client", choices=("fast", "peers"), default="fast",
                   help="Socket.IO client: fast (FastWS, like the other adapters) or peers (SocketIOClient)")
    g.add_argument("--quiet-wait", type=float, default=0.0, metavar="S",
                   help="before each system's run wait up to S seconds for other work to leave the CPUs [0]")
    g.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run Clipwire as `clipwire serve --workers N` on a private Redis; on N cores "
                        "give it room with --no-pin or --hub-cpu/--gen-cpus [1]")
    g.add_argument("--seed", type=int, default=1, help="seed for who talks to whom [1]")
    g.add_argument("--quiet", action="store_true", help="no progress lines")


def _flags(p: argparse.ArgumentParser, scenario: Scenario) -> None:
    g = p.add_argument_group("sizes")
    for f in scenario.flags:
        g.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=f.type, default=None,
                       help=f"{f.help} [{f.default}; --tiny {f.tiny}]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for scenario in SCENARIOS.values():
        p = sub.add_parser(scenario.name, help=scenario.help, description=scenario.help)
        _common(p)
        _flags(p, scenario)
    p = sub.add_parser("all", help="every scenario, default (or --tiny) sizes")
    _common(p)
    p.add_argument("--only", default=None, help="comma-separated scenarios to run")
    p.add_argument("--skip", default=None, help="comma-separated scenarios to leave out")
    p = sub.add_parser("check", help="compare the latest results with the baseline (ratios to the relay)")
    p.add_argument("--results", type=Path, default=DEFAULT_OUT / LATEST, help="latest results JSON")
    p.add_argument("--baseline", type=Path, default=Path(__file__).resolve().parent / "baseline.json")
    p.add_argument("--margin", type=float, default=0.2, help="allowed regression, as a fraction [0.2]")
    return parser


def _sizes(scenario: Scenario, args: argparse.Namespace) -> argparse.Namespace:
    values: dict[str, Any] = {}
    for f in scenario.flags:
        given = getattr(args, f.name, None)
        values[f.name] = given if given is not None else (f.tiny if args.tiny else f.default)
    return argparse.Namespace(**values)


def _setup(args: argparse.Namespace) -> dict[str, Any]:
    cpus = procinfo.available_cpus()
    hub_cpu: int | None = None
    gen_cpus: list[int] | None = None
    if not args.no_pin and len(cpus) >= 2:
        hub_cpu = args.hub_cpu if args.hub_cpu is not None else cpus[0]
        gen_cpus = procinfo.parse_cpus(args.gen_cpus) if args.gen_cpus else [c for c in cpus if c != hub_cpu]
    elif not args.no_pin:
        hub_cpu = args.hub_cpu
        gen_cpus = procinfo.parse_cpus(args.gen_cpus) if args.gen_cpus else None
    return {"procs": max(1, args.procs), "hub_cpu": hub_cpu, "gen_cpus": gen_cpus, "seed": args.seed,
            "taskset": procinfo.taskset_prefix(0) != [], "tiny": args.tiny,
            "sio_client": args.sio_client, "quiet_wait": args.quiet_wait, "workers": max(1, args.workers)}


def _systems(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    wanted = args.systems.split(",") if args.systems else list(systems.SYSTEMS)
    chosen, missing = [], {}
    for name in (s.strip() for s in wanted if s.strip()):
        why = systems.unavailable(name)
        if why is None:
            chosen.append(name)
        else:
            missing[name] = why
    return chosen, missing


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop servers and workers


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = build_parser().parse_args(argv)
    if args.command == "check":
        from .check import run_check

        return run_check(args.results, args.baseline, args.margin)
    progress = Progress(quiet=args.quiet)
    chosen, missing = _systems(args)
    for name, why in missing.items():
        progress.done(f"[{name}] not measured: {why}")
    if args.systems and missing:
        return 2
    if not chosen:
        print("no system to measure", file=sys.stderr)
        return 2
    if args.command == "all":
        names = list(SCENARIOS)
        if args.only:
            names = [n for n in args.only.split(",") if n]
        skip = set(args.skip.split(",")) if args.skip else set()
        unknown = [n for n in [*names, *skip] if n not in SCENARIOS]
        if unknown:
            print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        plan = [(SCENARIOS[n], _sizes(SCENARIOS[n], args)) for n in names if n not in skip]
    else:
        plan = [(SCENARIOS[args.command], _sizes(SCENARIOS[args.command], args))]
    setup = {**_setup(args), "systems": chosen, "unavailable": missing}
    from .runner import run

    record = run(plan, chosen, setup, progress)
    path = save(record, args.out)
    progress.done(f"results: {path}, {args.out / LATEST}, {args.out / 'summary.md'}")
    failed = [f"{n}/{s}" for n, e in record["scenarios"].items()
              for s, r in e["systems"].items() if "error" in r]
    if failed:
        progress.done(f"scenario runs that failed: {', '.join(failed)}")
        return 1
    return 0
