"""Transports: the only code that awaits the network.

Two implementations of the same behaviour, chosen by the ``transport`` setting
(the way uvicorn offers several WebSocket backends): ``websockets`` (websocket.py,
the default) and ``picows`` (picows.py, a Cython WebSocket protocol with less work
per frame; ``pip install 'clipwire[picows]'``). What they share, the HTTP routes and
the upgrade checks, is in http.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .http import WS_PATH, HttpRoute, TransportServer

if TYPE_CHECKING:
    from ..hub import Hub

TRANSPORTS = ("websockets", "picows")


async def start_transport(hub: Hub, host: str, port: int, *, reuse_port: bool = False,
                          routes: HttpRoute | None = None) -> TransportServer:
    """Listen with the transport ``hub.config.transport`` names."""
    if hub.config.transport == "picows":  # HubConfig.check made sure that picows is installed
        from .picows import start_picows_server

        return await start_picows_server(hub, host, port, reuse_port=reuse_port, routes=routes)
    from .websocket import start_websocket_server

    return await start_websocket_server(hub, host, port, reuse_port=reuse_port, routes=routes)


__all__ = ["TRANSPORTS", "WS_PATH", "TransportServer", "start_transport"]
