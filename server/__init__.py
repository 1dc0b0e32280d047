"""The Clipwire hub: core, store, transport and the ``clipwire`` command."""

from __future__ import annotations

from .app import ClipwireServer
from .auth import sign_token
from .config import HubConfig
from .hub import Hub

__all__ = ["ClipwireServer", "Hub", "HubConfig", "sign_token"]
