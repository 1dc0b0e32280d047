"""Facts about processes and the machine, read from /proc and the tools' own reports.

CPU and RSS come from /proc so the hub, a Node peer and our own workers are
measured the same way, whatever language they are written in.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOCKETIO_DIR = Path(__file__).resolve().parent / "peers" / "socketio"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """``pid``'s children, their children, and so on (``clipwire serve --workers N``'s workers)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            todo.extend(children)
    return found


def machine_busy_seconds() -> float:
    """CPU seconds spent busy on all cores since boot (/proc/stat: everything but idle and iowait)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def busy_seconds_per_cpu() -> dict[int, float]:
    """Busy CPU seconds since boot for each CPU (/proc/stat ``cpuN`` lines)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu") and line[3:4].isdigit():
                name, *values = line.split()
                f = [int(x) for x in values[:8]]
                out[int(name[3:])] = (sum(f) - f[3] - f[4]) / tick
    except (OSError, ValueError):
        pass
    return out


def background_busy_pct(sample_s: float = 1.0) -> float:
    """Busy CPU of the whole machine over ``sample_s``, in % of one core (nothing of ours is running)."""
    import time

    before = machine_busy_seconds()
    time.sleep(sample_s)
    return (machine_busy_seconds() - before) / sample_s * 100


def rss_kib(pid: int) -> int | None:
    """Resident set size (VmRSS) in KiB, or None if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def parse_cpus(text: str) -> list[int]:
    """``"1,3-4"`` -> ``[1, 3, 4]`` (taskset's list syntax)."""
    cpus: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def available_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def taskset_prefix(cpu: int | None) -> list[str]:
    """``taskset -c N`` in front of a command, or nothing when unpinned or taskset is missing."""
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def pin_self(cpus: list[int] | None) -> None:
    """Pin this process (taskset's system call, without the binary)."""
    if cpus:
        os.sched_setaffinity(0, cpus)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {"cpu_model": _cpu_model(), "cores": os.cpu_count(), "mem_gib": _mem_gib(),
            "kernel": platform.release(), "platform": platform.platform()}


def _dist(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _socketio_version() -> str | None:
    installed = SOCKETIO_DIR / "node_modules" / "socket.io" / "package.json"
    try:
        return str(json.loads(installed.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def versions() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "websockets": _dist("websockets"),
        "msgpack": _dist("msgpack"),
        "uvloop": _dist("uvloop"),
        "hdrhistogram": _dist("hdrhistogram"),
        "python-socketio": _dist("python-socketio"),
        "uvicorn": _dist("uvicorn"),
        "node": _run(["node", "--version"]),
        "socket.io": _socketio_version(),
        "clipwire": _dist("clipwire"),
        "executable": Path(sys.executable).name,
    }


def git_commit() -> dict[str, Any]:
    """The commit measured, and whether the tree had local changes (read-only git calls)."""
    commit = _run(["git", "rev-parse", "HEAD"])
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return {"commit": commit, "dirty": bool(status) if status is not None else None}
