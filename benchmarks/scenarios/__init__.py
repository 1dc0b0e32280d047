"""The scenarios, in the order ``all`` runs them: one module per question."""

from __future__ import annotations

from . import crossnode, dm, fanout, idle, latency, resume, share, storm
from .base import Ctx, Flag, Headline, Scenario, ScenarioError

SCENARIOS: dict[str, Scenario] = {
    m.SCENARIO.name: m.SCENARIO for m in (idle, latency, dm, fanout, share, resume, storm, crossnode)
}
SKIPPED: dict[str, str] = {}  # scenario -> why it cannot run yet

__all__ = ["SCENARIOS", "SKIPPED", "Ctx", "Flag", "Headline", "Scenario", "ScenarioError"]
