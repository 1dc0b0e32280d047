"""A stand-in for the application's backend: a real aiohttp app on loopback.

It receives webhooks and checks each signature as a real receiver would (with
``verify_signature``), and answers the DM-policy and card-resolver hooks. Each
endpoint answers through a replaceable *script* (an aiohttp handler), so a test
can make it slow, failing or nonsensical.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from clipwire.server.webhooks import ID_HEADER, SIGNATURE_HEADER, verify_signature

WEBHOOK_SECRET = "webhook-secret-shared-with-the-backend"
Script = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Delivery:
    """One webhook POST as the backend saw it."""

    webhook_id: str
    signature: str
    body: bytes
    verified: bool
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = orjson.loads(self.body)["events"]
        return events


def answer(status: int = 200, body: Any = None, *, raw: bytes | None = None,
           delay_s: float = 0.0) -> Script:
    """A script answering ``status`` with ``body`` as JSON (or ``raw`` bytes), after ``delay_s``."""

    async def script(request: web.Request) -> web.StreamResponse:
        if delay_s:
            await asyncio.sleep(delay_s)
        data = raw if raw is not None else orjson.dumps(body if body is not None else {})
        return web.Response(status=status, body=data, content_type="application/json")

    return script


class Backend:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.dm_rules: dict[tuple[str, str], bool] = {}
        self.cards: dict[str, dict[str, Any]] = {}
        self.dm_calls: list[tuple[str, str]] = []
        self.card_calls: list[str] = []
        self.webhook_script: Script = answer(204, raw=b"")
        self.dm_script: Script = self._dm_rules
        self.card_script: Script = self._card
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- what the hub calls ---------------------------------------------------------

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        signature = request.headers.get(SIGNATURE_HEADER, "")
        response = await self.webhook_script(request)
        webhook_id = request.headers.get(ID_HEADER, "")
        self.deliveries.append(Delivery(webhook_id, signature, body,
                                        verify_signature(WEBHOOK_SECRET, signature, body,
                                                         webhook_id=webhook_id),
                                        response.status))
        async with self._changed:
            self._changed.notify_all()
        return response

    async def _dm(self, request: web.Request) -> web.StreamResponse:
        self.dm_calls.append((request.query["from"], request.query["to"]))
        return await self.dm_script(request)

    async def _dm_rules(self, request: web.Request) -> web.StreamResponse:
        allowed = self.dm_rules.get((request.query["from"], request.query["to"]), False)
        return web.json_response({"allow": allowed})

    async def _card_route(self, request: web.Request) -> web.StreamResponse:
        self.card_calls.append(request.match_info["id"])
        return await self.card_script(request)

    async def _card(self, request: web.Request) -> web.StreamResponse:
        card = self.cards.get(request.match_info["id"])
        if card is None:
            return web.json_response({"error": "no such video"}, status=404)
        return web.json_response(card)

    # -- lifecycle and helpers for tests ------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhooks", self._webhook)
        app.router.add_get("/dm", self._dm)
        app.router.add_get("/cards/{id}", self._card_route)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def settings(self, **more: Any) -> dict[str, Any]:
        """Hub settings sending webhooks here, with a short grace for tests."""
        return {"webhook_url": self.url("/webhooks"), "webhook_secret": WEBHOOK_SECRET,
                "webhook_grace_s": 0.3, "webhook_backoff_s": 0.05, **more}

    def events(self, kind: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Events of verified, accepted deliveries, in arrival order; ``match`` is on ``data``."""
        found = []
        for delivery in self.deliveries:
            if not delivery.verified or delivery.status >= 300:
                continue
            for event in delivery.events:
                if (kind is None or event["type"] == kind) and all(
                        event["data"].get(k) == v for k, v in match.items()):
                    found.append(event)
        return found

    async def wait_events(self, kind: str, count: int = 1, timeout: float = 5.0,
                          **match: Any) -> list[dict[str, Any]]:
        """Wait until ``count`` events of ``kind`` matching ``match`` have arrived; return them all."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.events(kind, **match)) >= count)
        return self.events(kind, **match)

    async def wait_deliveries(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.deliveries) >= count)


def unused_port() -> int:
    """A loopback port nobody listens on (a backend that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll the in-process hub's state until ``check`` holds (counters, sessions)."""
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.005)
