"""PNG plots of p50 and p99 against offered rate, one line pair per system (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"clipwire": "tab:blue", "socketio": "tab:orange", "python-socketio": "tab:green",
          "relay": "tab:gray"}
UNITS = {"dm": "DMs offered per second", "fanout": "group posts offered per second",
         "share": "shares offered per second"}


def plot_all(latest: dict[str, Any], out: Path) -> list[Path]:
    written = []
    for name, xlabel in UNITS.items():
        entry = latest.get("scenarios", {}).get(name)
        if not entry or not any(r.get("steps") for r in entry.get("systems", {}).values()):
            continue
        fig, ax = plt.subplots(figsize=(8, 5))
        for system, res in entry["systems"].items():
            steps = [s for s in res.get("steps", []) if s["latency_ms"]["count"]]
            if not steps:
                continue
            x = [s["offered_per_s"] for s in steps]
            color = COLORS.get(system)
            ax.plot(x, [s["latency_ms"]["p99_ms"] for s in steps], "-o", color=color, label=f"{system} p99")
            ax.plot(x, [s["latency_ms"]["p50_ms"] for s in steps], "--", marker=".", color=color,
                    label=f"{system} p50")
        bound = entry.get("options", {}).get("p99_ms")
        if bound:
            ax.axhline(bound, color="red", linewidth=0.8, linestyle=":", label=f"p99 bound {bound:g} ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("send-to-delivery latency (ms)")
        ax.set_title(f"{name}: latency against offered rate ({entry.get('when', '')})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
