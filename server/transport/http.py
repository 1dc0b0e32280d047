"""What every transport serves the same way: the HTTP routes on the hub's port and
the checks made on a WebSocket upgrade.

A route takes an :class:`HttpRequest` (method, target, headers) and returns an
:class:`HttpResponse` (status, body, headers), or None for "not mine". Each
transport adapts these to its own server: ``websockets``' ``process_request``
(websocket.py), or the small HTTP reader in front of picows (picows.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from clipwire.protocol import SUBPROTOCOL

if TYPE_CHECKING:
    from ..hub import Hub

WS_PATH = "/ws"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
SERVER_NAME = "Clipwire"
# Once the hub closes a connection (or a peer stops answering pings), how long it
# waits for the closing handshake before dropping the TCP connection.
CLOSE_TIMEOUT_S = 2.0
# How many incoming messages one connection may have waiting for the hub before the
# transport stops reading its socket (and reads again once the hub has taken most).
MAX_QUEUE = 16


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An HTTP request's head: the hub's transports read no request bodies."""

    method: str
    target: str  # the path with its query string, as sent
    headers: Sequence[tuple[str, str]] = ()

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case); None if absent, or sent more than once."""
        values = self.header_values(name)
        return values[0] if len(values) == 1 else None

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: HTTPStatus
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Sequence[tuple[str, str]] = ()

    @classmethod
    def text(cls, status: HTTPStatus, text: str, headers: Sequence[tuple[str, str]] = ()) -> HttpResponse:
        return cls(status, text.encode(), headers=headers)


# More HTTP routes on the hub's port (the web demo): the response, or None for "not mine".
HttpRoute = Callable[[HttpRequest], Awaitable[HttpResponse | None]]


class TransportServer(Protocol):
    """A listening transport, as ``ClipwireServer`` starts and stops it."""

    @property
    def port(self) -> int: ...

    def stop_accepting(self) -> None:
        """Stop listening; open connections stay until the hub closes them."""
        ...

    async def wait_closed(self) -> None:
        """Wait until every connection has ended."""
        ...


def hub_routes(hub: Hub, extra: HttpRoute | None = None) -> Callable[[HttpRequest], Awaitable[HttpResponse]]:
    """Plain HTTP on the WebSocket port: /healthz (alive), /readyz (store and broker),
    /metrics (unless the server API serves it), then ``extra``'s routes, and 404 for
    everything else."""

    async def route(request: HttpRequest) -> HttpResponse:
        path = request.path
        if path == HEALTH_PATH:
            return HttpResponse.text(HTTPStatus.OK, "ok\n")
        if path == READY_PATH:
            ready, why = await hub.ready()
            return HttpResponse.text(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, why + "\n")
        if path == METRICS_PATH and not hub.config.api_key:
            # With the server API on, /metrics is served on its private port only: the
            # client port faces the internet, and the counts describe every user's traffic.
            return HttpResponse(HTTPStatus.OK, hub.metrics.render(),
                                "text/plain; version=0.0.4; charset=utf-8")
        if extra is not None:
            response = await extra(request)
            if response is not None:
                return response
        return HttpResponse.text(HTTPStatus.NOT_FOUND, f"Clipwire serves WebSocket at {WS_PATH}\n")

    return route


def allowed_origins(hub: Hub) -> frozenset[str] | None:
    """The Origins browsers may connect from, or None when any may."""
    if not hub.config.allowed_origins:
        return None
    return frozenset(o.strip() for o in hub.config.allowed_origins.split(",") if o.strip())


def refuse_upgrade(hub: Hub, origins: frozenset[str] | None, request: HttpRequest) -> HttpResponse | None:
    """The answer to a WebSocket upgrade on /ws that must not go through, or None."""
    if hub.connection_count >= hub.config.max_connections:
        return HttpResponse.text(HTTPStatus.SERVICE_UNAVAILABLE, "hub full: try another node or later\n")
    if origins is not None:
        # Browsers always send Origin; native apps and servers send none and are served.
        sent = request.header_values("Origin")
        if len(sent) > 1 or (sent and sent[0] not in origins):
            return HttpResponse.text(HTTPStatus.FORBIDDEN, "this Origin may not connect\n")
    return None


def choose_subprotocol(offered: Sequence[str]) -> str | None:
    """``clipwire.v1`` when offered; clients that offer nothing (browsers, simple tools)
    are served all the same. ``offered``: the Sec-WebSocket-Protocol values."""
    for value in offered:
        if SUBPROTOCOL in (item.strip() for item in value.split(",")):
            return SUBPROTOCOL
    return None


async def wait_tasks(tasks: set[asyncio.Task[None]]) -> None:
    """Wait for the connections' tasks, including those started meanwhile."""
    while tasks:
        await asyncio.wait(list(tasks))


__all__ = ["CLOSE_TIMEOUT_S", "HEALTH_PATH", "METRICS_PATH", "READY_PATH", "WS_PATH", "HttpRequest",
           "HttpResponse", "HttpRoute", "TransportServer", "allowed_origins", "choose_subprotocol",
           "hub_routes", "refuse_upgrade"]
