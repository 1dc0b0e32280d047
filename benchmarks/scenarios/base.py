"""What a scenario is, and the helpers every scenario shares.

A scenario declares its size flags (defaults are the issue's sizes, ``tiny``
values make it finish in seconds), which systems it can run on, and which
result fields are its headlines; ``run`` gets a started server and the worker
pool and returns a JSON-ready dict.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import hist
from ..pool import Pool
from ..progress import Progress
from ..systems import Server


class ScenarioError(RuntimeError):
    pass


@dataclass(frozen=True)
class Flag:
    name: str
    type: Callable[[str], Any]
    default: Any
    tiny: Any
    help: str


@dataclass(frozen=True)
class Headline:
    key: str
    label: str
    higher_is_better: bool


@dataclass
class Ctx:
    pool: Pool
    progress: Progress
    opts: argparse.Namespace
    gen_cpus: list[int] | None
    workdir: Path
    seed: int
    label: str = ""
    quiet_wait: float = 0.0  # see quiet.py

    def spread(self, users: list[str]) -> list[list[str]]:
        """Users dealt round-robin to the workers (so most messages cross processes)."""
        n = len(self.pool)
        return [users[i::n] for i in range(n)]

    def worker_of(self, users: list[str], user: str) -> int:
        return users.index(user) % len(self.pool)

    def rng(self) -> random.Random:
        return random.Random(self.seed)

    def connect(self, users: list[str], concurrency: int = 100) -> dict[str, Any]:
        """Connect every user on its worker; raise if any could not connect."""
        chunks = self.spread(users)
        per = [{"users": c, "concurrency": max(1, concurrency // len(chunks))} for c in chunks]
        results = self.pool.call_all("connect", timeout=60 + len(users) / 20, per=per)
        failed = sum(r["failed"] for r in results)
        if failed:
            first = next(r["first_error"] for r in results if r["first_error"])
            raise ScenarioError(f"{failed} of {len(users)} clients could not connect; first: {first}")
        start = min(r["start_ns"] for r in results)
        end = max(r["end_ns"] for r in results)
        h = hist.merge(r["hist"] for r in results)
        return {"clients": len(users), "seconds": round((end - start) / 1e9, 3),
                "per_s": round(len(users) / max(1e-9, (end - start) / 1e9), 1),
                "connect_ms": hist.summary(h)}


@dataclass(frozen=True)
class Scenario:
    name: str
    help: str
    run: Callable[[Ctx, Server], dict[str, Any]]
    flags: list[Flag] = field(default_factory=list)
    headlines: list[Headline] = field(default_factory=list)
    systems: tuple[str, ...] | None = None  # None: every system
    clipwire_args: Callable[[argparse.Namespace], list[str]] | None = None
    nodes: int = 1  # processes of each system, joined through a private Redis when more than one

    def supports(self, system: str) -> bool:
        return self.systems is None or system in self.systems


def floats(text: str) -> list[float]:
    """``"100,200,5e3"`` -> ``[100.0, 200.0, 5000.0]`` (stepped rates)."""
    return [float(x) for x in text.split(",") if x.strip()]
