"""Client adapters, one per system; workers build theirs from a system name."""

from __future__ import annotations

from typing import Any

from .base import Conn, Driver, OnBody


def make_driver(system: str, url: str, options: dict[str, Any]) -> Driver:
    """Imported lazily so a missing peer package only matters when it is used."""
    if system == "clipwire":
        from .clipwire import ClipwireDriver

        return ClipwireDriver(url, options)
    if system == "relay":
        from .relay import RelayDriver

        return RelayDriver(url, options)
    if system in ("socketio", "python-socketio"):
        from .socketio import SocketIODriver

        return SocketIODriver(system, url, options)
    raise ValueError(f"unknown system {system!r}")


__all__ = ["Conn", "Driver", "OnBody", "make_driver"]
