"""The fault-injecting TCP relay now lives in ``benchmarks/faultproxy.py``, shared
with the fault-injection runs (``benchmarks/faults.py``, ``tests/faults``); this
module keeps the SDK tests' ``from faultproxy import FaultProxy`` working."""

from __future__ import annotations

from benchmarks.faultproxy import Action, FaultProxy, FrameFilter

__all__ = ["Action", "FaultProxy", "FrameFilter"]
