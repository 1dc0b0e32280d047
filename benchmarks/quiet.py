"""Waiting for a quiet machine: on a shared box, other work would be measured as ours.

Only called while none of our processes is busy (between runs and steps), so
whatever the CPUs do then is someone else's.
"""

from __future__ import annotations

import time

from .procinfo import background_busy_pct
from .progress import Progress

QUIET_PCT = 15.0


def wait_quiet(limit_s: float, label: str, progress: Progress) -> float | None:
    """On a shared machine, wait (at most ``limit_s``) until others leave the CPUs nearly idle."""
    if limit_s <= 0:
        return None
    deadline = time.monotonic() + limit_s
    while True:
        busy = background_busy_pct(1.0)
        if busy < QUIET_PCT or time.monotonic() > deadline:
            if busy >= QUIET_PCT:
                progress.done(f"{label} the machine is still {busy:.0f}% busy (of one core) with other work")
            return round(busy, 1)
        progress.update(f"{label} waiting for a quiet machine: {busy:.0f}% busy with other work")
