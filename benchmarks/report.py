"""Where results go: the run's JSON, latest.json (latest result per scenario), summary.md, plots.

Ratios are always Clipwire's figure divided by the peer's, measured in the same
scenario run; each headline says whether higher or lower is better.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .scenarios import SCENARIOS
from .systems import PEERS

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
LATEST = "latest.json"


def save(record: dict[str, Any], out: Path) -> Path:
    """Write the run (runs/), merge it into latest.json, and regenerate summary.md and plots."""
    (out / "runs").mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_path = out / "runs" / f"{stamp}-{'-'.join(record['scenarios']) or 'none'}.json"
    run_path.write_text(json.dumps(record, indent=1) + "\n")
    latest_path = out / LATEST
    latest: dict[str, Any] = {"scenarios": {}}
    if latest_path.exists():
        try:
            latest = json.loads(latest_path.read_text())
        except ValueError:
            pass
    for key in ("suite", "format", "when", "machine", "versions", "git", "setup", "command"):
        latest[key] = record[key]
    latest.setdefault("scenarios", {}).update(record["scenarios"])
    for entry in latest["scenarios"].values():
        entry["ratios"] = ratios(entry)
    tmp = latest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(latest, indent=1) + "\n")
    tmp.replace(latest_path)
    (out / "summary.md").write_text(summary(latest))
    from .plots import plot_all

    plot_all(latest, out)
    return run_path


def headline_value(entry: dict[str, Any], system: str, key: str) -> float | None:
    value = entry.get("systems", {}).get(system, {}).get("headline", {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def ratios(entry: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """``{headline: {peer: clipwire / peer}}`` for every peer measured in this scenario run."""
    scenario = SCENARIOS.get(entry.get("name", ""))
    heads = scenario.headlines if scenario else []
    out: dict[str, dict[str, float | None]] = {}
    for h in heads:
        mine = headline_value(entry, "clipwire", h.key)
        row: dict[str, float | None] = {}
        for peer in entry.get("systems", {}):
            if peer == "clipwire":
                continue
            theirs = headline_value(entry, peer, h.key)
            row[peer] = round(mine / theirs, 3) if mine is not None and theirs else None
        out[h.key] = row
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def summary(latest: dict[str, Any]) -> str:
    m, v, g, setup = latest["machine"], latest["versions"], latest["git"], latest["setup"]
    lines = [
        "# Clipwire benchmark summary", "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m.get('mem_gib')} GiB, Linux {m['kernel']}. "
        f"Hub on CPU {setup.get('hub_cpu')}, generator on CPUs {setup.get('gen_cpus')} "
        f"({setup.get('procs')} processes).",
        f"Python {v['python']}, websockets {v['websockets']}, uvloop {v['uvloop']}, Node {v['node']}, "
        f"socket.io {v['socket.io']}, python-socketio {v['python-socketio']}. "
        f"Commit {str(g.get('commit'))[:12]}{' (with local changes)' if g.get('dirty') else ''}.",
        "", "Each scenario's systems ran in one sitting, interleaved; ratios are Clipwire / peer from "
        "the same scenario run. Regenerate with `python -m benchmarks all`.", "",
    ]
    entries = latest["scenarios"]
    seen = {p for e in entries.values() for p in e.get("systems", {}) if p != "clipwire"}
    peers = [p for p in PEERS if p in seen] + sorted(seen - set(PEERS))
    systems = ["clipwire", *peers]
    lines += ["## Headlines", "",
              "| scenario | headline | better | " + " | ".join(systems) + " | "
              + " | ".join(f"clipwire / {p}" for p in peers) + " | measured |",
              "|---|---|---|" + "---|" * (len(systems) + len(peers)) + "---|"]
    for name, scenario in SCENARIOS.items():
        entry = entries.get(name)
        if entry is None:
            continue
        if "skipped" in entry:
            blanks = " | ".join("" for _ in systems + peers)
            lines.append(f"| {name} | {entry['skipped']} | | {blanks} | |")
            continue
        for h in scenario.headlines:
            values = []
            for s in systems:
                res = entry["systems"].get(s)
                if res is None:
                    values.append("n/a")
                elif "error" in res:
                    values.append("error")
                else:
                    val = res.get("headline", {}).get(h.key)
                    limit = res.get("headline", {}).get("limited_by")
                    mark = (" (gen-bound)" if limit == "generator" else
                            " (top step)" if str(limit).startswith("none reached") else "")
                    values.append(_fmt(val) + mark)
            rat = [_fmt(entry.get("ratios", {}).get(h.key, {}).get(p)) for p in peers]
            lines.append(f"| {name} | {h.label} | {'higher' if h.higher_is_better else 'lower'} | "
                         + " | ".join(values) + " | " + " | ".join(rat) + f" | {entry['when']} |")
    lines += ["", "\"gen-bound\": the step after the headline failed because the generator could not "
              "offer the rate (or was saturated), so the system's real limit is higher. \"top step\": "
              "every step passed, so the limit is above the highest rate tried. Either way the "
              "ratio understates that system.", ""]
    for name in ("dm", "fanout", "share"):
        entry = entries.get(name)
        if not entry or not entry.get("systems"):
            continue
        lines += [f"## {name} steps", "",
                  "| system | offered/s | sent/s | delivered/s | lost | p50 ms | p99 ms | p99.9 ms "
                  "| send lag p99 ms | hub CPU % | generator CPU % | pass |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for system, res in entry["systems"].items():
            for s in res.get("steps", []):
                lat = s["latency_ms"]
                lines.append(
                    f"| {system} | {_fmt(s['offered_per_s'])} | {_fmt(s['sent_per_s'])} | "
                    f"{_fmt(s['delivered_per_s'])} | {_fmt(s['lost'])} | {_fmt(lat['p50_ms'])} | "
                    f"{_fmt(lat['p99_ms'])} | {_fmt(lat['p999_ms'])} | {_fmt(s['send_lag_ms']['p99_ms'])} | "
                    f"{_fmt(s['hub_cpu_pct'])} | {' + '.join(_fmt(c) for c in s['gen_cpu_pct'])} | "
                    f"{'yes' if s['ok'] else 'no' if s['offered_ok'] else 'no (generator)'} |")
        lines += ["", f"![{name}]({name}.png)", ""]
    errors = [(n, s, r["error"]) for n, e in entries.items() for s, r in e.get("systems", {}).items()
              if "error" in r]
    if errors:
        lines += ["## Errors", ""] + [f"- {n} / {s}: {err}" for n, s, err in errors] + [""]
    unavailable = latest["setup"].get("unavailable") or {}
    if unavailable:
        lines += ["## Systems not measured", ""] + [f"- {s}: {why}" for s, why in unavailable.items()] + [""]
    return "\n".join(lines)
