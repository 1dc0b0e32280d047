"""cross-node: dm and latency across two hub processes through Redis. Not available yet.

The multi-node hub (``clipwire serve --redis-url``, ``--workers``) is landing
in parallel; until this suite starts hubs that way (and the Socket.IO peers
with their Redis adapter), the scenario only says so and records the reason.
"""

from __future__ import annotations

from typing import Any

from ..systems import Server
from .base import Ctx, Scenario

REASON = ("cross-node is not available yet: the suite does not start multi-node hubs (Redis) and "
          "Socket.IO's Redis adapter yet")


def run(ctx: Ctx, server: Server) -> dict[str, Any]:
    raise NotImplementedError(REASON)  # the runner skips it before starting any server


SCENARIO = Scenario(name="cross-node", help="(not available yet) dm and latency across two hub processes",
                    run=run)
