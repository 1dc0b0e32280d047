"""``benchmarks check`` on hand-made results: when ratios to the relay mean something."""

from __future__ import annotations

from typing import Any

from benchmarks.check import compare

MACHINE = {"cpu_model": "same", "cores": 2}


def dm_run(clipwire: float, relay: float, relay_limit: str) -> dict[str, Any]:
    def system(rate: float, limit: str) -> dict[str, Any]:
        return {"headline": {"rate_per_s": rate, "limited_by": limit}}

    return {"machine": MACHINE, "scenarios": {"dm": {
        "name": "dm", "machine": MACHINE,
        "systems": {"clipwire": system(clipwire, "system"), "relay": system(relay, relay_limit)}}}}


def test_a_relay_at_its_own_limit_is_the_floor() -> None:
    status, lines = compare(dm_run(3000, 8000, "system"), dm_run(3000, 4000, "system"), 0.2)
    assert status == 1 and "REGRESSED" in "\n".join(lines)  # half the ratio: a regression


def test_a_relay_stopped_by_the_generator_is_no_floor() -> None:
    # Clipwire did better; the relay only looks better because the generator let it climb.
    status, lines = compare(dm_run(6000, 32000, "none reached: raise --rates"),
                            dm_run(3000, 8000, "generator"), 0.2)
    text = "\n".join(lines)
    assert status == 0, text
    assert "absolute: the relay hit a bound" in text
    status, lines = compare(dm_run(2000, 32000, "generator"), dm_run(3000, 8000, "system"), 0.2)
    assert status == 1, "\n".join(lines)  # compared in absolute terms, still caught


def cross_run(clipwire: float, socketio: float, cpu_model: str,
              socketio_limit: str = "system") -> dict[str, Any]:
    """As the cross-node scenario writes it: the climb's limit under "dm"."""
    machine = {"cpu_model": cpu_model, "cores": 2}

    def system(rate: float, limit: str) -> dict[str, Any]:
        return {"headline": {"rate_per_s": rate, "p50_ms": 1.0},
                "dm": {"headline": {"rate_per_s": rate, "limited_by": limit}}}

    systems = {"clipwire": system(clipwire, "system"), "socketio": system(socketio, socketio_limit)}
    return {"machine": machine, "scenarios": {"cross-node": {
        "name": "cross-node", "machine": machine, "systems": systems}}}


def test_cross_node_has_socketio_for_a_yardstick_on_any_machine() -> None:
    # A slower machine halves both: no regression, though another machine's absolute
    # figures could not have been compared at all.
    status, lines = compare(cross_run(1000, 2000, "slow"), cross_run(2000, 4000, "fast"), 0.2)
    text = "\n".join(lines)
    assert status == 0 and "/ socketio" in text, text
    status, lines = compare(cross_run(500, 2000, "slow"), cross_run(2000, 4000, "fast"), 0.2)
    assert status == 1 and "REGRESSED" in "\n".join(lines)


def test_a_socketio_stopped_by_the_generator_is_no_yardstick_across_nodes() -> None:
    # Socket.IO's climb hit the top step: its rate is a lower bound, so the rate is
    # compared in absolute terms (same machine only); the latency still by ratio.
    status, lines = compare(cross_run(1000, 4000, "same", "none reached: raise --rates"),
                            cross_run(1000, 2000, "same"), 0.2)
    text = "\n".join(lines)
    assert status == 0, text
    assert "absolute: the socketio hit a bound" in text
    assert "/ socketio" in text  # p50
