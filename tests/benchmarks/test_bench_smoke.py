"""CI smoke run of the benchmark suite: every scenario at tiny sizes against every system here.

No thresholds: the point is that the suite keeps running and its output stays sane
(results JSON, summary, plots, nothing lost at tiny rates), so it never rots.
Clipwire and the bare relay always run; the Socket.IO peers run when
``benchmarks/peers`` exists (Node's only where ``node`` is installed; its npm
packages are installed by the peers' own set-up). Nothing here is skipped.

The file is not named ``test_smoke.py``: ``tests/server/test_smoke.py`` exists and
the suite imports test files by basename (no packages, prepend import mode).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("idle", "latency", "dm", "fanout", "share", "resume", "storm", "cross-node")
SINGLE_PROCESS = ("relay",)  # no multi-node mode
FANS = {"dm": lambda entry: 1, "cross-node": lambda entry: 1, "fanout": lambda entry: entry["fan"],
        "share": lambda entry: entry["targets"]}


def _systems() -> list[str]:
    names = ["clipwire", "relay"]
    if (ROOT / "benchmarks" / "peers" / "__init__.py").exists():
        names.append("python-socketio")
        if shutil.which("node"):
            names.append("socketio")
    return names


def _bench(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[str]]:
    out = tmp_path_factory.mktemp("bench")
    systems = _systems()
    run = _bench("all", "--tiny", "--quiet", "--systems", ",".join(systems), "--out", str(out), timeout=150)
    assert run.returncode == 0, f"benchmark run failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    return out, json.loads((out / "latest.json").read_text()), systems


@pytest.mark.timeout(160)
def test_every_scenario_ran_on_every_system(smoke: tuple[Path, dict[str, Any], list[str]]) -> None:
    out, latest, systems = smoke
    assert latest["machine"]["cores"] and latest["versions"]["python"] and "commit" in latest["git"]
    assert len(list((out / "runs").glob("*.json"))) == 1
    for name in SCENARIOS:
        entry = latest["scenarios"][name]
        expected = ["clipwire"] if name == "resume" else systems
        if name == "cross-node":
            expected = [s for s in systems if s not in SINGLE_PROCESS]
        assert sorted(entry["systems"]) == sorted(expected), name
        for system, result in entry["systems"].items():
            assert "error" not in result, f"{name}/{system}: {result.get('traceback')}"
            assert result["headline"], f"{name}/{system} has no headline"
        for peer in expected[1:]:
            assert peer in next(iter(entry["ratios"].values())), f"{name}: no ratio to {peer}"


def test_deliveries_are_complete_at_tiny_rates(smoke: tuple[Path, dict[str, Any], list[str]]) -> None:
    _, latest, _ = smoke
    for name, fan in FANS.items():
        for system, result in latest["scenarios"][name]["systems"].items():
            result = result.get("dm", result)  # cross-node: its dm part
            assert result["steps"], f"{name}/{system} ran no step"
            for step in result["steps"]:
                where = f"{name}/{system} at {step['offered_per_s']}/s"
                assert step["sent"] == step["planned"] > 0, where
                assert step["expected"] == step["sent"] * fan(result), where
                assert step["delivered"] == step["expected"] and step["lost"] == 0, where
                assert step["errors"] == 0 and step["send_errors"] == 0, where
                assert step["latency_ms"]["count"] == step["delivered"], where
    for system, result in latest["scenarios"]["latency"]["systems"].items():
        assert result["latency_ms"]["count"] == 200 and not result["timed_out"], system
    for system, result in latest["scenarios"]["cross-node"]["systems"].items():
        assert result["nodes"] == 2, system
        assert result["latency"]["latency_ms"]["count"] == 200 and not result["latency"]["timed_out"], system
    for system, result in latest["scenarios"]["idle"]["systems"].items():
        assert result["connect"]["clients"] == 20 and result["rss_after_kib"] > 0, system
    resume = latest["scenarios"]["resume"]["systems"]["clipwire"]
    assert resume["received"] == resume["messages"] == 500
    assert resume["history_pages"] > 0  # 250 per DM is past resume_cap (200): gaps were paged
    for system, result in latest["scenarios"]["storm"]["systems"].items():
        assert result["back"] == 20 and result["failed"] == 0, system
        assert result["replayed"] == result["missed_each"] * 20, system


def test_summary_and_plots_are_written(smoke: tuple[Path, dict[str, Any], list[str]]) -> None:
    out, _, systems = smoke
    summary = (out / "summary.md").read_text()
    assert "## Headlines" in summary and "## dm steps" in summary
    for system in systems:
        assert f"| {system} |" in summary
    for name in ("dm", "fanout", "share"):
        assert (out / f"{name}.png").stat().st_size > 1000


def test_check_passes_against_itself_and_catches_a_regression(
        smoke: tuple[Path, dict[str, Any], list[str]], tmp_path: Path) -> None:
    out, latest, _ = smoke
    same = _bench("check", "--results", str(out / "latest.json"), "--baseline", str(out / "latest.json"),
                  timeout=30)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no headline regressed" in same.stdout
    better = json.loads(json.dumps(latest))
    clipwire = better["scenarios"]["dm"]["systems"]["clipwire"]["headline"]
    clipwire["rate_per_s"] = clipwire["rate_per_s"] * 10  # a baseline ten times better than now
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(better))
    worse = _bench("check", "--results", str(out / "latest.json"), "--baseline", str(baseline), timeout=30)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert "REGRESSED" in worse.stdout


@pytest.mark.timeout(90)
def test_clipwire_workers_run_and_their_cpu_is_counted(tmp_path: Path) -> None:
    """``--workers 2``: the hub is `clipwire serve --workers 2` on a private Redis; the
    step's hub CPU is the workers' (the supervisor itself only waits)."""
    run = _bench("dm", "--tiny", "--quiet", "--systems", "clipwire", "--workers", "2", "--no-pin",
                 "--out", str(tmp_path), timeout=80)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    entry = json.loads((tmp_path / "latest.json").read_text())["scenarios"]["dm"]
    assert entry["setup"]["workers"] == 2
    steps = entry["systems"]["clipwire"]["steps"]
    assert steps and all(s["delivered"] == s["expected"] == s["sent"] > 0 for s in steps)
    assert sum(s["hub_cpu_pct"] for s in steps) > 0
