"""``benchmarks check``: has a Clipwire headline regressed against the committed baseline?

Each headline is compared as a ratio to a yardstick measured in the same
scenario run, so a slower or busier machine moves both and does not fail the
check: the bare relay floor, or Socket.IO where the relay does not run
(cross-node). Headlines with no yardstick (resume), and rates where the
yardstick's climb stopped at the generator or the top step in either run (its
figure is then only a lower bound), are compared as absolute figures, and only
when the CPU model and core count match.
Exit status: 0 nothing regressed, 1 a headline regressed by more than the
margin, 2 nothing could be compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .report import headline_value
from .scenarios import SCENARIOS, Headline

FLOOR = "relay"
NEXT_BEST = "socketio"  # the yardstick of scenarios the relay cannot run (cross-node)


def _yardstick(systems: tuple[str, ...] | None) -> str | None:
    if systems is None or FLOOR in systems:
        return FLOOR
    return NEXT_BEST if NEXT_BEST in systems else None


def _normalized(entry: dict[str, Any], h: Headline, absolute: bool,
                yardstick: str = FLOOR) -> tuple[float | None, str]:
    mine = headline_value(entry, "clipwire", h.key)
    if "clipwire" not in entry.get("systems", {}):
        return None, "clipwire not measured"
    if mine is None:
        err = entry["systems"]["clipwire"].get("error")
        return None, f"clipwire failed: {err}" if err else "clipwire had no passing step"
    if absolute:
        return mine, "absolute"
    floor = headline_value(entry, yardstick, h.key)
    if floor is None or floor == 0:
        return None, f"no {yardstick} figure in this run"
    return mine / floor, f"/ {yardstick}"


def _floor_bounded(entry: dict[str, Any], yardstick: str = FLOOR) -> bool:
    """The yardstick's climb stopped at the generator or the top step: its figure is a lower
    bound, and a ratio to it says more about the generator than about Clipwire."""
    system = entry.get("systems", {}).get(yardstick, {})
    # cross-node results before its headline carried the climb's limit keep it under "dm"
    limited = (system.get("headline", {}).get("limited_by")
               or system.get("dm", {}).get("headline", {}).get("limited_by"))
    return limited is not None and limited != "system"


def _same_machine(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ma, mb = a.get("machine", {}), b.get("machine", {})
    return bool(ma) and ma.get("cpu_model") == mb.get("cpu_model") and ma.get("cores") == mb.get("cores")


def compare(latest: dict[str, Any], baseline: dict[str, Any], margin: float) -> tuple[int, list[str]]:
    lines: list[str] = []
    regressed = compared = 0
    width = max(len(h.label) for s in SCENARIOS.values() for h in s.headlines)
    for name, scenario in SCENARIOS.items():
        base = baseline.get("scenarios", {}).get(name)
        cur = latest.get("scenarios", {}).get(name)
        if base is None or "skipped" in base:
            continue
        yardstick = _yardstick(scenario.systems)
        no_floor = yardstick is None
        for h in scenario.headlines:
            # A climb's bound says nothing of the same run's latencies (cross-node has both).
            absolute = yardstick is None or (h.higher_is_better and cur is not None
                                             and "skipped" not in cur
                                             and (_floor_bounded(base, yardstick)
                                                  or _floor_bounded(cur, yardstick)))
            label = h.label.ljust(width)
            if cur is None or "skipped" in cur:
                lines.append(f"  {label}  not measured in the latest results")
                continue
            b, why_b = _normalized(base, h, absolute, yardstick or FLOOR)
            c, why_c = _normalized(cur, h, absolute, yardstick or FLOOR)
            if b is None:
                lines.append(f"  {label}  baseline has no figure ({why_b})")
                continue
            if absolute and not _same_machine(base, cur):
                lines.append(f"  {label}  skipped: an absolute figure, and the machine differs from the "
                             "baseline's")
                continue
            if c is None:
                if why_c.startswith("clipwire"):
                    regressed += 1
                    compared += 1
                    lines.append(f"  {label}  REGRESSED: {why_c}")
                else:
                    lines.append(f"  {label}  cannot compare: {why_c}")
                continue
            compared += 1
            change = c / b - 1
            worse = change < -margin if h.higher_is_better else change > margin
            regressed += worse
            unit = why_c if why_c != "absolute" or no_floor else f"absolute: the {yardstick} hit a bound"
            direction = "higher" if h.higher_is_better else "lower"
            lines.append(f"  {label}  {'REGRESSED' if worse else 'ok':9} baseline {b:.4g} now {c:.4g} "
                         f"({unit}, {change:+.1%}; {direction} is better)")
    if compared == 0:
        return 2, [*lines, "nothing could be compared: run the scenarios with the relay first "
                           "(python -m benchmarks all)"]
    verdict = (f"{regressed} headline(s) regressed by more than {margin:.0%}" if regressed
               else f"no headline regressed by more than {margin:.0%} ({compared} compared)")
    return (1 if regressed else 0), [*lines, verdict]


def run_check(results: Path, baseline: Path, margin: float) -> int:
    for path, what in ((results, "results"), (baseline, "baseline")):
        if not path.exists():
            print(f"benchmarks check: no {what} at {path}")
            return 2
    latest = json.loads(results.read_text())
    base = json.loads(baseline.read_text())
    print(f"benchmarks check: {results} (commit {str(latest.get('git', {}).get('commit'))[:12]}) against "
          f"{baseline} (commit {str(base.get('git', {}).get('commit'))[:12]}), margin {margin:.0%}")
    status, lines = compare(latest, base, margin)
    print("\n".join(lines))
    return status
