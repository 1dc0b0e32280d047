"""HDR latency histograms in microseconds, passed between processes as text.

Every process records into its own histogram; the coordinator merges the
encoded copies, so percentiles cover every delivery of a step exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 120_000_000  # two minutes: anything slower is clamped, and a failure anyway
DIGITS = 3


def new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def record_ns(h: HdrHistogram, ns: int) -> None:
    """Record a duration given in nanoseconds (clamped into the histogram's range)."""
    us = ns // 1000
    h.record_value(LOWEST_US if us < LOWEST_US else HIGHEST_US if us > HIGHEST_US else us)


def encode(h: HdrHistogram) -> str:
    return str(h.encode().decode("ascii"))


def merge(encoded: Iterable[str | None]) -> HdrHistogram:
    total = new()
    for text in encoded:
        if text:
            total.add(HdrHistogram.decode(text.encode("ascii")))
    return total


def summary(h: HdrHistogram) -> dict[str, Any]:
    """Count and percentiles in milliseconds (None when nothing was recorded)."""
    n = h.get_total_count()
    if n == 0:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "p999_ms": None,
                "max_ms": None, "mean_ms": None}

    def ms(p: float) -> float:
        return round(float(h.get_value_at_percentile(p)) / 1000, 3)

    return {"count": n, "p50_ms": ms(50), "p90_ms": ms(90), "p99_ms": ms(99), "p999_ms": ms(99.9),
            "max_ms": round(h.get_max_value() / 1000, 3), "mean_ms": round(h.get_mean_value() / 1000, 3)}
